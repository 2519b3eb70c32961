/**
 * The client's paths: every path by its index (a removed one leaves a hole, since an index is never
 * reused), the ones in use in order, and which of them may carry data now (the backup rule).
 */

import { ClientPath } from "../../path/path_stats.ts";

/** The paths of one client. */
export class ClientPaths {
  /** The paths in use, in the order they were added. */
  list: readonly ClientPath[];
  readonly #byIndex: (ClientPath | undefined)[];
  /** Paths that may carry data now (backup rule applied); rebuilt when a path changes state. */
  #candidates: ClientPath[] = [];
  #candidatesStale = true;

  constructor(paths: readonly ClientPath[]) {
    this.#byIndex = [...paths];
    this.list = [...paths];
  }

  /** The path with `pathIndex`, unless it was removed (or never was). */
  get(pathIndex: number): ClientPath | undefined {
    return this.#byIndex[pathIndex];
  }

  /** Adds a path under the next unused index. */
  add(label: string, backup: boolean, weight: number): ClientPath {
    const path = new ClientPath(this.#byIndex.length, label, backup, weight);
    this.#byIndex.push(path);
    this.list = [...this.list, path];
    this.changed();
    return path;
  }

  /** Removes a path; returns it, or undefined when there was none. */
  remove(pathIndex: number): ClientPath | undefined {
    const path = this.#byIndex[pathIndex];
    if (!path) return undefined;
    this.#byIndex[pathIndex] = undefined;
    this.list = this.list.filter((known) => known !== path);
    this.changed();
    return path;
  }

  /** A path came, went, or changed state or service: the candidates are worked out again. */
  changed(): void {
    this.#candidatesStale = true;
  }

  /**
   * The paths that may carry data: every primary path not known to be down; backup paths only when
   * no primary path is live; and when no path at all is live, all of them, since any might be the
   * one that works.
   */
  candidates(): ClientPath[] {
    if (!this.#candidatesStale) return this.#candidates;
    let primaryLive = false;
    let backupLive = false;
    const inService = this.list.filter((path) => path.inService);
    for (const path of inService) {
      if (path.state === "down") continue;
      if (path.backup) backupLive = true;
      else primaryLive = true;
    }
    this.#candidates = inService.filter((path) =>
      primaryLive
        ? !path.backup && path.state !== "down"
        : backupLive
        ? path.backup && path.state !== "down"
        : true
    );
    this.#candidatesStale = false;
    return this.#candidates;
  }
}
