// The GitHub listing: container packages and their versions, by REST API.

export { DEFAULT_GITHUB_API, listContainerPackages } from './listing.js';
export type {
  ListOptions, ListedPackage, ListedVersion, ListingLogger,
} from './types.js';
