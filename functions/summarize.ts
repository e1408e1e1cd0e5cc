// Lambda handler of the Summarize state: totals the run, updates the
// inventory, emits the run's metrics; returns the summary, whose
// `succeeded` decides whether the execution fails.

import { lambdaHandler } from './common/handler.js';
import { publishRunMetrics } from './common/metrics.js';
import { STEP_SECRETS } from './common/step-secrets.js';
import { summarize } from './lib/run/summarize.js';

export const handler = lambdaHandler('Summarize', STEP_SECRETS.summarize,
  async (event, { deps, metrics }) => {
    const summary = await summarize(event as never, deps);
    publishRunMetrics(metrics, summary);
    return summary;
  });
