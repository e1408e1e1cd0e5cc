// The error contract shared by every layer.
//
// Step Functions retries and catches by an error's `name`, and the CLI picks
// its exit message by it, so the names below are part of the interface and
// never change. Modules subclass these (a registry's 401 is an
// AuthenticationError) but keep the family's name, so a workflow retry on
// "TransientError" catches every transient fault wherever it was raised.

export interface ErrorDetails {
  /** What the user can do about it, when they can do something. */
  hint?: string;
  /** The HTTP status that caused it, when one did. */
  status?: number;
  cause?: unknown;
}

export abstract class BackupError extends Error {
  readonly hint?: string;
  readonly status?: number;

  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { cause: details.cause });
    this.hint = details.hint;
    this.status = details.status;
  }

  /** The message and, when there is one, what to do about it. */
  describe(): string {
    return this.hint ? `${this.message}\n${this.hint}` : this.message;
  }
}

/** A network error, a 5xx or a 429 that outlived its retries: try later. */
export class TransientError extends BackupError {
  override readonly name = 'TransientError';
}

/** Missing, wrong or insufficient credentials. Retrying will not help. */
export class AuthenticationError extends BackupError {
  override readonly name = 'AuthenticationError';
}

/** An org, package, repository, tag or digest that does not exist. */
export class NotFoundError extends BackupError {
  override readonly name = 'NotFoundError';
}

/** Bad options, a malformed reference or manifest: fix the input. */
export class InvalidInputError extends BackupError {
  override readonly name = 'InvalidInputError';
}

/** Bytes whose sha256 is not the digest they were announced with. */
export class IntegrityError extends BackupError {
  override readonly name = 'IntegrityError';
}

/** The operation was stopped by its caller's deadline or abort signal. */
export class InterruptedError extends BackupError {
  override readonly name = 'InterruptedError';
}

/** Names that Step Functions may retry; everything else is final. */
export const RETRYABLE_ERROR_NAMES = ['TransientError'] as const;

/** Replaces anything that looks like a credential in text meant for users. */
export function redact(text: string): string {
  return text
    .replace(/(authorization:\s*)(basic|bearer)\s+\S+/gi, '$1$2 [redacted]')
    .replace(/\b(gh[pousr]_[A-Za-z0-9]{20,})\b/g, '[redacted]')
    .replace(/\b(github_pat_[A-Za-z0-9_]{20,})\b/g, '[redacted]')
    .replace(/([?&](?:access_token|token|password|X-Amz-Signature|sig)=)[^&\s]+/gi,
      '$1[redacted]')
    .replace(/(\/\/[^/:@\s]+:)[^@\s/]+@/g, '$1[redacted]@');
}
