// The selection policy: which versions and tags a backup copies (pure).

export { selectVersions } from './policy.js';
export type {
  SelectedVersion, SelectionOptions, TaggedVersion,
} from './policy.js';
export { semverOfTag, subjectOfTag } from './tags.js';
