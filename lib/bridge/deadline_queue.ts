/**
 * The bridge's queue of datagrams held back by an impairment: a min-heap on the deadline, ties kept
 * in arrival order so equal delays never reorder. One timer serves the whole queue.
 */

/** What the queue orders by: a deadline, then the order of arrival. */
export interface Deadlined {
  readonly atMs: number;
  readonly order: number;
}

/** A binary min-heap of delayed entries by deadline, then arrival order. */
export class DeadlineQueue<T extends Deadlined> {
  readonly #heap: T[] = [];

  get size(): number {
    return this.#heap.length;
  }

  peek(): T | undefined {
    return this.#heap[0];
  }

  push(entry: T): void {
    const heap = this.#heap;
    heap.push(entry);
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(heap[index], heap[parent])) break;
      [heap[index], heap[parent]] = [heap[parent], heap[index]];
      index = parent;
    }
  }

  pop(): T | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length === 0 || last === undefined) return top;
    heap[0] = last;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < heap.length && before(heap[left], heap[smallest])) smallest = left;
      if (right < heap.length && before(heap[right], heap[smallest])) smallest = right;
      if (smallest === index) break;
      [heap[index], heap[smallest]] = [heap[smallest], heap[index]];
      index = smallest;
    }
    return top;
  }

  clear(): void {
    this.#heap.length = 0;
  }
}

function before(a: Deadlined, b: Deadlined): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order);
}
