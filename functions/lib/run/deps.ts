// What the steps of a run are given: stores, registries, the GitHub token,
// a logger. The Lambda handlers build it from their environment and
// secrets, the CLI from its flags and the Docker config; the steps never
// read the environment themselves.

import type { CopyEvent } from '../copy/types.js';
import type { Registry, RegistryEndpoint } from '../registry/types.js';
import type {
  DigestStore, ImageResult, PlannedImage, RunStore,
} from '../store/types.js';
import type { RunState } from './types.js';

/** Powertools' Logger fits; the core is quiet without one. */
export interface RunLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** What a progress display wants to hear about, as it happens. */
export interface RunObserver {
  /** The plan is stored: how many images the run will look at. */
  planned?(state: RunState): void;
  /** An image's result was recorded (up to date, copied or failed). */
  imageDone?(result: ImageResult): void;
  /** A copy engine event of one image (bytes, blobs). */
  copyEvent?(image: PlannedImage, event: CopyEvent): void;
}

export interface RunDeps {
  runs: RunStore;
  digests: DigestStore;
  /**
   * The GitHub API and its token; only listing (ListAndSelect) needs it,
   * so a deployed step that does not list is built without the token.
   */
  github?: {
    /** A token with read:packages; also the source registry's password. */
    token: string;
    /** The REST API root, e.g. https://api.github.com. */
    api: string;
  };
  /** The registry the packages are pulled from (ghcr.io). */
  source: RegistryEndpoint;
  /**
   * The client of a registry, with its credentials. Called for the source
   * and for the target of each run; implementations keep one client per
   * host so that tokens are reused.
   */
  registry(endpoint: RegistryEndpoint): Registry;
  /** Runs before the first push into a repository (ECR creates it). */
  prepareRepository?(target: RegistryEndpoint, repository: string):
    Promise<void>;
  /** Pages worked on at once. @default 4 */
  pageConcurrency?: number;
  /** Manifest HEADs on the target at once while checking a page.
   * @default 16 */
  checkConcurrency?: number;
  /** Blobs streamed at once within one image. @default 4 */
  blobConcurrency?: number;
  logger?: RunLogger;
  observer?: RunObserver;
  /** The clock, in epoch ms. @default Date.now */
  now?: () => number;
}

export const QUIET_LOGGER: RunLogger = {
  debug() {}, info() {}, warn() {},
};
