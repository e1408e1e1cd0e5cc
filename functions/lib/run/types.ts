// What travels between the states of an org backup run.
//
// Every shape here is small by construction: the plan, the listing and the
// per-image results live in the RunStore, and the states pass a run id, page
// numbers and indexes into a page. The workflow definition (infra/workflow.ts)
// reads these fields by JSONPath, so their names are part of its contract.

import type { BlobAction } from '../copy/types.js';

/** The execution input, as the schedule, the console or the CLI give it. */
export interface ExecutionInput {
  /** The organisation whose packages are backed up (or `user`). */
  org?: string;
  /** A personal account whose packages are backed up (or `org`). */
  user?: string;
  /** `[http://]HOST[:PORT][/PATH]`: where the images land. */
  target: string;
  /** Only packages whose name matches this regular expression. */
  packages?: string;
  /** Tags matching this regular expression are never copied. */
  excludeTags?: string;
  /** Copy every tag, without keeping only the highest of each line. */
  allVersions?: boolean;
  /** Check and measure, copy nothing. */
  dryRun?: boolean;
  /** Images copied at once within a page. */
  concurrency?: number;
}

/** ListAndSelect's output: the whole run, by reference. */
export interface RunState {
  runId: string;
  /** Page numbers of the plan, 0..n-1, for the page fan-out. */
  pages: number[];
  concurrency: {
    /** Pages worked on at once. */
    pages: number;
    /** Images copied at once within a page. */
    images: number;
  };
  dryRun: boolean;
  counts: {
    packages: number;
    images: number;
    tags: number;
    goneFromSource: number;
  };
}

/** The input of one page's iteration (CheckPage). */
export interface PageTask {
  runId: string;
  page: number;
  imageConcurrency: number;
}

/** CheckPage's result: which images of the page still need work. */
export interface PageCheck {
  /** Indexes into the plan page of the images that need a copy. */
  work: number[];
  /** Images whose every tag already resolves to the planned digest. */
  upToDate: number;
}

/** The input of one image's iteration (CopyImage). */
export interface ImageTask {
  runId: string;
  page: number;
  index: number;
  /** The previous invocation's outcome, when this one continues it. */
  previous?: CopyOutcome | { status: 'new' };
}

/** What the invocations of one image's copy did so far. */
export interface CopyProgress {
  blobs: Record<BlobAction, number>;
  bytesUploaded: number;
  durationMs: number;
}

/** CopyImage's result; `incomplete` loops back for a continuation. */
export interface CopyOutcome {
  status: 'copied' | 'up-to-date' | 'failed' | 'incomplete';
  /** Carried to the next invocation of an incomplete copy. */
  progress?: CopyProgress;
}

/** An error as Step Functions hands it to a Catch. */
export interface CaughtError {
  Error: string;
  /** Locally the message; from Lambda a JSON string with errorMessage. */
  Cause?: string;
}

/** RecordCopyFailure's input: the image and why its copy failed. */
export interface FailureTask extends ImageTask {
  action: 'record-failure';
  error: CaughtError;
}

/** Summarize's input: the run, and the fan-out's error if it failed. */
export interface SummarizeInput extends RunState {
  failure?: CaughtError;
}

/** One failed image in the summary. */
export interface FailedImage {
  package: string;
  digest: string;
  tags: string[];
  error: { name: string; message: string };
}

/** Summarize's output and the execution's result: small and readable. */
export interface RunSummary {
  runId: string;
  dryRun: boolean;
  succeeded: boolean;
  images: {
    total: number;
    copied: number;
    upToDate: number;
    failed: number;
  };
  /** Tags (and packages) the backup holds that the source no longer has. */
  goneFromSource: { count: number; tags: string[] };
  blobs: Record<BlobAction, number>;
  bytesUploaded: number;
  durationMs: number;
  /** Up to a bounded number of failures, with their reasons. */
  failures: FailedImage[];
  /** Why the run failed, for the Fail state; absent when it succeeded. */
  error?: { name: string; message: string };
}
