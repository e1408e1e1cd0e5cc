// Plan building: selection over a listing -> images -> pages, and the
// inventory that tells which tags are gone from the source.

export { buildPlan, pagesOf, targetRepositoryOf } from './plan.js';
export type { PlanTarget } from './plan.js';
export { goneFromSource, nextInventory } from './inventory.js';
export type { GoneFromSource, GoneOptions, Inventory } from './inventory.js';
