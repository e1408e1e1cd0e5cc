// Errors of the registry client.
//
// Each class extends a family of ../errors.ts and keeps the family's `name`,
// which Step Functions and the CLI match on. They add what failed: the
// registry, repository and reference, and the registry's own error code.
// Messages are built from those values and the registry's answer, never from
// request headers, and go through `redact` in case a registry echoes a
// credential back.

import {
  AuthenticationError, IntegrityError, InterruptedError, InvalidInputError,
  NotFoundError, TransientError, redact, type ErrorDetails,
} from '../errors.js';

/** What a request was about, for error messages. */
export interface RegistryErrorContext {
  /** `host[:port]` of the registry. */
  registry: string;
  repository?: string;
  /** A tag or a digest. */
  reference?: string;
  /** What was being done, e.g. `GET manifest`, `upload blob`. */
  operation?: string;
}

export interface RegistryErrorDetails extends ErrorDetails {
  /** The registry's error code, e.g. `MANIFEST_UNKNOWN`. */
  code?: string;
}

/** `registry/repository:tag`, `registry/repository@digest` or `registry`. */
export function describeTarget(context: RegistryErrorContext): string {
  const { registry, repository, reference } = context;
  if (!repository) return registry;

  const name = `${registry}/${repository}`;
  if (!reference) return name;
  return reference.includes(':')
    ? `${name}@${reference}` : `${name}:${reference}`;
}

/** `GET manifest ghcr.io/org/app:1.0` or just the target. */
function lead(context: RegistryErrorContext): string {
  const target = describeTarget(context);
  return context.operation ? `${context.operation} ${target}` : target;
}

/** Missing, wrong or insufficient credentials for a registry. */
export class RegistryAuthenticationError extends AuthenticationError {
  readonly context: RegistryErrorContext;
  readonly code?: string;
  /** The registry said the token lacks a scope (`insufficient_scope`). */
  readonly insufficientScope: boolean;

  constructor(context: RegistryErrorContext, message: string,
    details: RegistryErrorDetails & { insufficientScope?: boolean } = {}) {
    super(redact(`${lead(context)}: ${message}`), details);
    this.context = context;
    this.code = details.code;
    this.insufficientScope = details.insufficientScope ?? false;
  }
}

/** A repository, manifest, tag or blob the registry does not have. */
export class RegistryNotFoundError extends NotFoundError {
  readonly context: RegistryErrorContext;
  readonly code?: string;

  constructor(context: RegistryErrorContext, message: string,
    details: RegistryErrorDetails = {}) {
    super(redact(`${lead(context)}: ${message}`), details);
    this.context = context;
    this.code = details.code;
  }
}

/** Network errors, 5xx and 429 that outlived their retries. */
export class RegistryUnavailableError extends TransientError {
  readonly context: RegistryErrorContext;
  readonly code?: string;
  /** Requests made before giving up. */
  readonly attempts: number;

  constructor(context: RegistryErrorContext, message: string,
    details: RegistryErrorDetails & { attempts: number }) {
    super(redact(`${lead(context)}: ${message}`), details);
    this.context = context;
    this.code = details.code;
    this.attempts = details.attempts;
  }
}

/** Any other refusal (400, 405, 409, ...): the request itself was wrong. */
export class RegistryRequestError extends InvalidInputError {
  readonly context: RegistryErrorContext;
  readonly code?: string;

  constructor(context: RegistryErrorContext, message: string,
    details: RegistryErrorDetails = {}) {
    super(redact(`${lead(context)}: ${message}`), details);
    this.context = context;
    this.code = details.code;
  }
}

/** A manifest that is not JSON, too large, or of an unknown kind. */
export class ManifestInvalidError extends InvalidInputError {
  readonly context: RegistryErrorContext;

  constructor(context: RegistryErrorContext, message: string,
    details: ErrorDetails = {}) {
    super(redact(`${lead(context)}: ${message}`), details);
    this.context = context;
  }
}

/** A reference or registry address the user wrote that does not parse. */
export class ReferenceInvalidError extends InvalidInputError {
  /** The text as given. */
  readonly input: string;

  constructor(input: string, message: string, hint?: string) {
    super(redact(`invalid reference "${input}": ${message}`), { hint });
    this.input = input;
  }
}

/** Bytes whose digest (or size) is not the one they were announced with. */
export class DigestMismatchError extends IntegrityError {
  readonly context: RegistryErrorContext;
  readonly expected: string;
  readonly actual: string;

  constructor(context: RegistryErrorContext, expected: string,
    actual: string, what = 'content') {
    super(redact(`${lead(context)}: ${what} is ${actual}, expected ` +
      `${expected}`), {
      hint: 'the bytes changed on the way or the registry serves other ' +
        'content under this digest; nothing was stored',
    });
    this.context = context;
    this.expected = expected;
    this.actual = actual;
  }
}

/** The caller's signal stopped a request. */
export class RegistryInterruptedError extends InterruptedError {
  readonly context: RegistryErrorContext;

  constructor(context: RegistryErrorContext, cause?: unknown) {
    super(`${lead(context)}: interrupted`, { cause });
    this.context = context;
  }
}

/** The registry's own error code and message from an error body, if any. */
export function parseErrorBody(text: string):
  { code?: string; message?: string } {
  try {
    const parsed = JSON.parse(text) as {
      errors?: { code?: unknown; message?: unknown }[];
    };
    const first = parsed.errors?.[0];
    if (!first) return {};

    return {
      code: typeof first.code === 'string' ? first.code : undefined,
      message: typeof first.message === 'string' ? first.message : undefined,
    };
  } catch {
    const line = text.trim().split('\n')[0] ?? '';
    return line ? { message: line.slice(0, 200) } : {};
  }
}
