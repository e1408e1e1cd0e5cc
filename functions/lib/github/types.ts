// What the GitHub listing returns and what it is asked, apart from how.

/** One version of a container package: a manifest digest and its tags. */
export interface ListedVersion {
  /** GitHub's id of the package version. */
  id: number;
  /** The manifest digest (`sha256:...`); GitHub calls it the version name. */
  digest: string;
  /** Tags pointing at the digest; empty for an untagged version. */
  tags: string[];
  createdAt: string;
  updatedAt: string;
}

/** One container package and every active version of it. */
export interface ListedPackage {
  /** The package name as GitHub lists it (may contain `/`). */
  name: string;
  /** `public`, `private` or `internal`. */
  visibility: string;
  /** The repository on the registry: lowercase `owner/name`. */
  repository: string;
  versions: ListedVersion[];
}

/** Where debug decisions and fallbacks go; silent when not given. */
export interface ListingLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface ListOptions {
  /** The organisation whose packages to list. Exactly one of org, user. */
  org?: string;
  /** The user account whose packages to list. Exactly one of org, user. */
  user?: string;
  /** A token with `read:packages`. Never logged nor put in an error. */
  token: string;
  /**
   * The REST API root.
   * @default 'https://api.github.com' (GitHub Enterprise Server:
   * 'https://HOST/api/v3')
   */
  baseUrl?: string;
  /** Only packages whose name matches (unanchored, like `grep -E`). */
  packages?: RegExp;
  /**
   * Packages whose versions are listed at once.
   * @default 4
   */
  concurrency?: number;
  /**
   * Retries of one request after a rate limit, a 5xx or a network error.
   * @default 3
   */
  retries?: number;
  /**
   * First backoff delay when GitHub says nothing about when to retry;
   * doubled at each attempt, with jitter.
   * @default 1000
   */
  retryDelayMs?: number;
  /**
   * The longest wait for a rate limit to reset; beyond it the listing fails
   * at once with a TransientError saying when the limit resets.
   * @default 60000
   */
  maxRetryWaitMs?: number;
  /** The fetch to use instead of the global one. */
  fetch?: typeof globalThis.fetch;
  logger?: ListingLogger;
  signal?: AbortSignal;
}
