// Lambda handler of the CheckPage state: one manifest HEAD on the target
// per tag of a plan page; returns the indexes of the images to copy.

import { lambdaHandler } from './common/handler.js';
import { STEP_SECRETS } from './common/step-secrets.js';
import { checkPage } from './lib/run/check-page.js';

export const handler = lambdaHandler('CheckPage', STEP_SECRETS.checkPage,
  (event, { deps }) => checkPage(event as never, deps));
