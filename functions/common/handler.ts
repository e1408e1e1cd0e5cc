// The shape every Lambda handler of the workflow shares: wait for the
// runtime built at cold start, log with the invocation's context, and let
// errors out with their stable names (Step Functions retries and catches
// by them) and without anything that looks like a secret.

import { BackupError, redact } from '../lib/errors.js';
import { logger, runtime, type Runtime } from './runtime.js';
import type { SecretName } from './step-secrets.js';

/** The part of Lambda's context the handlers use. */
export interface LambdaContext {
  getRemainingTimeInMillis(): number;
  awsRequestId?: string;
  functionName?: string;
}

export type Step<R> = (event: unknown, runtime: Runtime,
  context: LambdaContext) => Promise<R>;

/**
 * A Lambda handler running `step` for the state named `state`, which reads
 * the secrets `uses` (its STEP_SECRETS entry) and no others. Starts
 * building the runtime now, at module load, so secrets are read during
 * the cold start rather than on the first invocation's clock.
 */
export function lambdaHandler<R>(state: string,
  uses: readonly SecretName[], step: Step<R>):
  (event: unknown, context: LambdaContext) => Promise<R> {
  // a failure here surfaces in the first invocation, with its message
  runtime({ uses }).catch(() => {});

  return async (event, context) => {
    logger.addContext(context as Parameters<typeof logger.addContext>[0]);
    logger.appendKeys({ state: stateOf(state, event) });

    try {
      // a cold start that failed (a secret without a value) is reported
      // like a failed step, with what to do
      const ready = await runtime({ uses });
      return await step(event, ready, context);
    } catch (error) {
      const clean = sanitize(error);
      const hint = clean instanceof BackupError && clean.hint
        ? redact(clean.hint) : undefined;
      logger.error('step failed', {
        error: { name: clean.name, message: clean.message, hint },
      });
      throw clean;
    }
  };
}

/** The CopyImage function also serves RecordCopyFailure. */
function stateOf(state: string, event: unknown): string {
  const action = (event as { action?: unknown } | null)?.action;
  return action === 'record-failure' ? 'RecordCopyFailure' : state;
}

/**
 * The error with credentials redacted from its message and stack, its
 * name kept. Lambda reports both to Step Functions and the logs.
 */
function sanitize(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(redact(String(error)));

  error.message = redact(error.message);
  if (error.stack) error.stack = redact(error.stack);
  return error;
}
