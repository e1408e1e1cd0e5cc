// Lambda handler of the ListAndSelect state: lists, selects, stores the
// plan; returns the run id and page numbers.

import { lambdaHandler } from './common/handler.js';
import { listAndSelect } from './lib/run/list-and-select.js';

export const handler = lambdaHandler('ListAndSelect',
  (event, { deps }) => listAndSelect(event, deps));
