// Which secrets each step of the workflow reads. The handlers read exactly
// these at cold start, and the stack grants each function's role exactly
// these, so a function never holds a secret its step does not use.
//
// No imports: the stack reads this at synth time.

/** The secrets the stack may hold. */
export type SecretName = 'githubToken' | 'targetCredentials';

/** The workflow's steps, as the stack labels their functions. */
export type StepName = 'listAndSelect' | 'checkPage' | 'copyImage' |
  'summarize';

/**
 * The target's credentials are read only where the stack has a secret for
 * them: an ECR target takes tokens from the function's role, an anonymous
 * one nothing.
 */
export const STEP_SECRETS: Readonly<Record<StepName, readonly SecretName[]>> =
  {
    // the API listing needs the token; one manifest HEAD on the target
    // checks that it takes our credentials before any work fans out
    listAndSelect: ['githubToken', 'targetCredentials'],
    // manifest HEADs on the target only; the source is never contacted
    checkPage: ['targetCredentials'],
    // pulls from the source registry and pushes to the target (a dry run
    // reads both as well)
    copyImage: ['githubToken', 'targetCredentials'],
    // the table only
    summarize: [],
  };
