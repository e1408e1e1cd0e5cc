// The workflow's Task states bound to the run's steps, in-process: what
// the Lambda handlers do in the cloud, over the dependencies given (local
// stores for the CLI, anything for tests).

import type { RunDeps } from '../lib/run/deps.js';
import { checkPage } from '../lib/run/check-page.js';
import { copyDeadline, copyStep } from '../lib/run/copy-image.js';
import { listAndSelect } from '../lib/run/list-and-select.js';
import { summarize } from '../lib/run/summarize.js';
import type { LocalHandler } from './run-workflow.js';

/** Task state name -> handler, as functions/*.ts serve them in Lambda. */
export function localHandlers(deps: RunDeps):
  Record<string, LocalHandler> {
  const copy: LocalHandler = (input, context) => copyStep(input, deps, {
    deadline: copyDeadline(context.getRemainingTimeInMillis(), Date.now()),
    signal: context.signal,
  });

  return {
    ListAndSelect: (input, context) => listAndSelect(input, deps,
      { signal: context.signal }),
    CheckPage: (input) => checkPage(input as never, deps),
    CopyImage: copy,
    RecordCopyFailure: copy,
    Summarize: (input) => summarize(input as never, deps),
  };
}
