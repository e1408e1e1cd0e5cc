// Patterns from the user (--packages, --exclude-tags) are tested against
// many names, so none may carry state from one test to the next.

/** A global or sticky RegExp remembers where it last matched; drop that. */
export function withoutState(pattern: RegExp): RegExp {
  return new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
}
