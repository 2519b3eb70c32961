/**
 * The message vectors `recvmmsg` and `sendmmsg` take: an array of `struct mmsghdr` (64-bit Linux
 * layout) with one iovec and one socket address each, and, for receiving, the slots the datagrams
 * after the first of a batch land in.
 *
 * Every slot has room for the largest UDP datagram ({@link SLOT_BYTES}), so a datagram of any size
 * may arrive anywhere in a burst. That costs little memory because the slot area is mapped with
 * `mmap` and the kernel gives it pages only where datagrams are written: a small datagram touches
 * one page of its slot, and after a datagram longer than 12 KiB the rest of its slot is given back
 * (`madvise(MADV_DONTNEED)`), so a socket keeps at most 12 KiB per slot. The slot area is unmapped
 * when its vector is freed (or, for one dropped without that, when it is garbage-collected).
 */

import {
  addressOf,
  type Libc,
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
} from "./libc.ts";
import { SOCKADDR_BYTES } from "./sockaddr.ts";

/** Room for each datagram received after the first of a batch: the largest UDP datagram fits. */
export const SLOT_BYTES = 65536;
/** The page size the slots are given back in; 4 KiB on the architectures this layer runs on. */
const PAGE_BYTES = 4096;
/**
 * What each slot keeps of the memory a datagram touched: the pages of a longer one are given back
 * (a system call, and page faults when the slot is written again), so this is 12 KiB — DNS answers
 * and datagrams that fill a 9000-byte jumbo frame pay nothing, and a socket keeps at most 64 × 12
 * KiB.
 */
export const KEPT_SLOT_BYTES = 3 * PAGE_BYTES;

const IOVEC_BYTES = 16;
/** `struct mmsghdr` on 64-bit Linux: a 56-byte `msghdr`, the 4-byte `msg_len`, padding. */
export const MMSGHDR_BYTES = 64;
const MSG_NAMELEN_OFFSET = 8;
const MSG_IOV_OFFSET = 16;
const MSG_IOVLEN_OFFSET = 24;
const MSG_FLAGS_OFFSET = 48;
const MSG_LEN_OFFSET = 56;

/** A vector of `mmsghdr` with one iovec each, and the memory it names. */
export class MessageVector {
  readonly headers: Uint8Array;
  readonly headerView: DataView;
  readonly iovecs: Uint8Array;
  readonly iovecView: DataView;
  readonly names: Uint8Array;

  constructor(readonly capacity: number) {
    this.headers = new Uint8Array(capacity * MMSGHDR_BYTES);
    this.headerView = new DataView(this.headers.buffer);
    this.iovecs = new Uint8Array(capacity * IOVEC_BYTES);
    this.iovecView = new DataView(this.iovecs.buffer);
    this.names = new Uint8Array(capacity * SOCKADDR_BYTES);
    const iovecBase = addressOf(this.iovecs);
    const nameBase = addressOf(this.names);
    for (let index = 0; index < capacity; index++) {
      const header = index * MMSGHDR_BYTES;
      this.headerView.setBigUint64(header, nameBase + BigInt(index * SOCKADDR_BYTES), true);
      this.headerView.setUint32(header + MSG_NAMELEN_OFFSET, SOCKADDR_BYTES, true);
      this.headerView.setBigUint64(
        header + MSG_IOV_OFFSET,
        iovecBase + BigInt(index * IOVEC_BYTES),
        true,
      );
      this.headerView.setBigUint64(header + MSG_IOVLEN_OFFSET, 1n, true);
    }
  }

  /** Points message `index`'s iovec at `lengthBytes` bytes at address `base`. */
  setIovec(index: number, base: bigint, lengthBytes: number): void {
    this.iovecView.setBigUint64(index * IOVEC_BYTES, base, true);
    this.iovecView.setBigUint64(index * IOVEC_BYTES + 8, BigInt(lengthBytes), true);
  }

  /** Sets the room (before a receive) or length (before a send) of message `index`'s address. */
  setNameLength(index: number, bytes: number): void {
    this.headerView.setUint32(index * MMSGHDR_BYTES + MSG_NAMELEN_OFFSET, bytes, true);
  }

  /** The bytes the kernel moved for message `index` (`msg_len`). */
  length(index: number): number {
    return this.headerView.getUint32(index * MMSGHDR_BYTES + MSG_LEN_OFFSET, true);
  }

  /** The flags the kernel gave message `index` on receiving it (`msg_flags`). */
  flags(index: number): number {
    return this.headerView.getInt32(index * MMSGHDR_BYTES + MSG_FLAGS_OFFSET, true);
  }
}

/** A mapping of slot memory: where it starts and how long it is, for `munmap` by its libc. */
interface SlotMapping {
  base: bigint;
  readonly lengthBytes: number;
  readonly libc: Libc;
}

function unmapSlots(mapping: SlotMapping): void {
  if (mapping.base === 0n) return;
  mapping.libc.munmap(Deno.UnsafePointer.create(mapping.base), BigInt(mapping.lengthBytes));
  mapping.base = 0n;
}

/** Unmaps the slot memory of receive vectors that were dropped without being freed. */
const slotFinalizer = new FinalizationRegistry<SlotMapping>(unmapSlots);

/**
 * The receive vector: message 0 into the caller's buffer, the rest into slots of {@link SLOT_BYTES}
 * in memory of its own mapping (see this module's comment). Call {@link free} when done with it.
 */
export class ReceiveVector extends MessageVector {
  /** The slot area; unusable after {@link free}. */
  readonly slots: Uint8Array<ArrayBuffer>;
  /** How many messages the last `recvmmsg` filled (their name lengths need setting back). */
  namesFilled = 0;
  readonly #libc: Libc;
  readonly #mapping: SlotMapping;

  constructor(libc: Libc, capacity: number) {
    super(capacity);
    this.#libc = libc;
    const lengthBytes = capacity * SLOT_BYTES;
    const pointer = libc.mmap(
      null,
      BigInt(lengthBytes),
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
      -1,
      0n,
    );
    const base = BigInt(Deno.UnsafePointer.value(pointer));
    if (pointer === null || base === 0xffff_ffff_ffff_ffffn) {
      throw new Error("mmap of the receive slots failed (out of memory?)");
    }
    this.#mapping = { base, lengthBytes, libc };
    slotFinalizer.register(this, this.#mapping, this.#mapping);
    this.slots = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(pointer!, lengthBytes));
    for (let index = 1; index < capacity; index++) {
      this.setIovec(index, base + BigInt(index * SLOT_BYTES), SLOT_BYTES);
    }
  }

  /** Gives back the pages of slot `index` past {@link KEPT_SLOT_BYTES}, after a long datagram. */
  release(index: number): void {
    if (this.#mapping.base === 0n) return;
    const from = this.#mapping.base + BigInt(index * SLOT_BYTES + KEPT_SLOT_BYTES);
    this.#libc.madvise(
      Deno.UnsafePointer.create(from),
      BigInt(SLOT_BYTES - KEPT_SLOT_BYTES),
      MADV_DONTNEED,
    );
  }

  /** Unmaps the slot area; the vector must not be used again. */
  free(): void {
    slotFinalizer.unregister(this.#mapping);
    unmapSlots(this.#mapping);
    // Detach the view's buffer: a stray read after this finds nothing instead of unmapped memory.
    this.slots.buffer.transfer(0);
  }
}
