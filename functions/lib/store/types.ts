// What the core remembers between runs, as interfaces. The copy engine and
// the plan see only these; the local-files and DynamoDB implementations live
// beside them and are chosen by the CLI or the handler that builds the core.

/**
 * Images per plan page the planner should use. Both stores accept larger
 * pages (the DynamoDB store splits a page over several items), but 500
 * keeps a page one item and one read, and 50,000 tags a hundred pages.
 */
export const PLAN_PAGE_SIZE = 500;

/**
 * Where a store says what it decided; silent unless a logger is passed.
 * The Powertools logger and `console` both fit.
 */
export interface StoreLogger {
  debug(message: string, fields: Record<string, unknown>): void;
  warn(message: string, fields: Record<string, unknown>): void;
}

/**
 * Where blobs went: per target registry, which repositories hold each blob
 * digest. Written only after a manifest that references the blobs was pushed
 * (ECR mounts only blobs that a pushed manifest references), read for mount
 * candidates, corrected when a mount is refused.
 */
export interface DigestStore {
  /**
   * Repositories of `registry` known to hold `digest`, most recently
   * remembered first; empty when none is known.
   */
  locate(registry: string, digest: string): Promise<string[]>;

  /**
   * Records that `repository` of `registry` now holds these blobs, as the
   * newest location of each. Repeated digests count once; none is a no-op.
   */
  remember(registry: string, repository: string,
    digests: readonly string[]): Promise<void>;

  /** Drops one location, after a mount from it was refused; dropping an
   * unknown location is a no-op. */
  forget(registry: string, repository: string, digest: string):
    Promise<void>;
}

/** One image of a plan: a manifest digest of a package and its tags. */
export interface PlannedImage {
  /** The package name as GitHub lists it (may contain `/`). */
  package: string;
  /** The source repository (lowercase `owner/package`). */
  sourceRepository: string;
  /** The target repository (`[PATH/]package`). */
  targetRepository: string;
  digest: string;
  /** Tags to point at the digest on the target; empty for a referrer. */
  tags: string[];
}

/** The result of one image of a run, kept small. */
export interface ImageResult {
  package: string;
  digest: string;
  tags: string[];
  status: 'copied' | 'up-to-date' | 'failed';
  /** Error name and message when failed (no secret, no stack). */
  error?: { name: string; message: string };
  blobs: { uploaded: number; mounted: number; skipped: number;
    foreign: number };
  bytesUploaded: number;
  durationMs: number;
}

/**
 * A run's plan and results, kept outside the workflow state so that no
 * state carries more than a page reference. Implementations expire a run's
 * records after a while (TTL in DynamoDB).
 */
export interface RunStore {
  /**
   * Stores page `page` (an integer from 0 to 999,999) of a run's plan,
   * replacing what an earlier call stored for it.
   */
  putPlanPage(runId: string, page: number, images: PlannedImage[]):
    Promise<void>;
  /** Throws NotFoundError when the page was never stored or expired. */
  getPlanPage(runId: string, page: number): Promise<PlannedImage[]>;

  /** One result per image (keyed by package and digest); a rerun of the
   * same image replaces it. */
  putResult(runId: string, result: ImageResult): Promise<void>;
  /** Every result of the run, ordered by package, then digest. */
  listResults(runId: string): Promise<ImageResult[]>;

  /**
   * Free-form run metadata (options, counts, tags gone from source), as
   * JSON. Each call replaces the whole record: read, merge, put to add.
   */
  putRunInfo(runId: string, info: Record<string, unknown>): Promise<void>;
  getRunInfo(runId: string): Promise<Record<string, unknown> | undefined>;

  /**
   * What the backup holds per target: package name -> tags last seen in
   * the source, to report tags (and packages) that are gone from it.
   * Empty for a target never written; `putInventory` replaces it whole
   * (packages missing from the new map are dropped).
   */
  getInventory(target: string): Promise<Map<string, string[]>>;
  putInventory(target: string, inventory: Map<string, string[]>):
    Promise<void>;
}
