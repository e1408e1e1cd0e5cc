// Lambda handler of the CopyImage state (and of RecordCopyFailure): copies
// one image, stopping well before the function's timeout so that the
// workflow continues the copy in a new invocation.

import { lambdaHandler } from './common/handler.js';
import { STEP_SECRETS } from './common/step-secrets.js';
import { copyDeadline, copyStep } from './lib/run/copy-image.js';

export const handler = lambdaHandler('CopyImage', STEP_SECRETS.copyImage,
  (event, { deps }, context) => copyStep(event, deps, {
    deadline: copyDeadline(context.getRemainingTimeInMillis(), Date.now()),
  }));
