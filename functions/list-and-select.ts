// Lambda handler of the ListAndSelect state: lists, selects, stores the
// plan; returns the run id and page numbers.

import { lambdaHandler } from './common/handler.js';
import { STEP_SECRETS } from './common/step-secrets.js';
import { listAndSelect } from './lib/run/list-and-select.js';

export const handler = lambdaHandler('ListAndSelect',
  STEP_SECRETS.listAndSelect,
  (event, { deps }) => listAndSelect(event, deps));
