// Runs the workflow definition on this machine with aws-local-stepfunctions,
// every Task state served by an in-process handler of the same name.
//
// What it adds to the library, so that a local run proves what the cloud
// run needs:
// - Step Functions refuses a state input or output over 256 KiB; the
//   library does not. Every handler's input and output, every state's
//   input and output and every Map's collected result is measured, and a
//   run that exceeds the limit fails with States.DataLimitExceeded.
// - A Lambda context whose remaining time counts down from the Task's
//   TimeoutSeconds, so handlers stop before it as they do in Lambda.
// - An estimate of the execution history, per execution (the parent, and
//   each child of a DISTRIBUTED Map), counted the way Step Functions
//   records events, to check the 25,000-event limit.

import {
  ExecutionAbortedError, ExecutionError, StateMachine,
  type StateMachineDefinition,
} from 'aws-local-stepfunctions';

import type { WorkflowDefinition } from '../../infra/workflow.js';

/** Step Functions' limit on a state's input or output, in bytes. */
export const STATE_PAYLOAD_LIMIT = 256 * 1024;

/** Step Functions' limit on events in one execution's history. */
export const HISTORY_EVENT_LIMIT = 25_000;

/** Step Functions' Task timeout when a state names none. */
const DEFAULT_TASK_TIMEOUT_SECONDS = 60;

/** The part of Lambda's context our handlers use, plus a stop signal. */
export interface LocalContext {
  getRemainingTimeInMillis(): number;
  /** Aborted when the run is aborted (a state too large, Ctrl-C). */
  signal: AbortSignal;
  /** The Task state being run. */
  stateName: string;
}

export type LocalHandler = (input: unknown, context: LocalContext) =>
  Promise<unknown>;

export interface LocalRunOptions {
  definition: WorkflowDefinition;
  /** Task state name -> handler; every Task state must have one. */
  handlers: Readonly<Record<string, LocalHandler>>;
  /** @default STATE_PAYLOAD_LIMIT */
  payloadLimit?: number;
  /** Wait this long before every retry instead of the definition's. */
  retryIntervalMs?: number;
  signal?: AbortSignal;
}

export interface PayloadRecord {
  state: string;
  what: 'input' | 'output' | 'map result' | 'execution input';
  bytes: number;
}

export interface HistoryEstimate {
  /** Events of the top-level execution. */
  parent: number;
  /** Child executions of DISTRIBUTED Maps, and the largest one's events. */
  children: number;
  largestChild: number;
}

export interface LocalRunReport {
  status: 'succeeded' | 'failed';
  /** The execution's output, when it succeeded. */
  output?: unknown;
  /** Why it failed: the error name Step Functions would record. */
  error?: { name: string; message: string };
  /** The error as thrown by a handler, when one caused the failure. */
  cause?: unknown;
  stateTransitions: number;
  largestPayload: PayloadRecord;
  history: HistoryEstimate;
}

type Execution = ReturnType<StateMachine['run']>;
type EventLog = Awaited<ReturnType<Execution['eventLogs']['next']>>['value'];

/**
 * Executes `definition` with `input`. Resolves with a report whether the
 * execution succeeded or failed; rejects only when the definition cannot
 * run at all (invalid, or a Task state without a handler).
 */
export async function runWorkflowLocally(input: unknown,
  options: LocalRunOptions): Promise<LocalRunReport> {
  const states = describeStates(options.definition);
  const missing = [...states.values()]
    .filter((state) => state.type === 'Task' && !options.handlers[state.name])
    .map((state) => state.name);
  if (missing.length > 0) {
    throw new Error(`no local handler for Task state(s) ${missing.join(', ')}`);
  }

  const limit = options.payloadLimit ?? STATE_PAYLOAD_LIMIT;
  const machine = new StateMachine(
    options.definition as unknown as StateMachineDefinition,
    { validationOptions: { checkArn: true, checkPaths: true } });
  const stop = new AbortController();
  const payloads = new PayloadWatch(limit, () => stop.abort());
  payloads.measure('(execution)', 'execution input', input);

  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const state of states.values()) {
    if (state.type !== 'Task') continue;
    const handler = options.handlers[state.name]!;
    const timeoutMs = (state.timeoutSeconds ?? DEFAULT_TASK_TIMEOUT_SECONDS)
      * 1000;

    handlers[state.name] = async (taskInput) => {
      payloads.measure(state.name, 'input', taskInput);
      const started = Date.now();
      const output = await handler(taskInput, {
        getRemainingTimeInMillis: () => timeoutMs - (Date.now() - started),
        signal: stop.signal,
        stateName: state.name,
      });
      payloads.measure(state.name, 'output', output);
      return (output ?? null) as never;
    };
  }

  const retryIntervalOverrides: Record<string, number> = {};
  if (options.retryIntervalMs !== undefined) {
    for (const state of states.values()) {
      if (state.retries) retryIntervalOverrides[state.name] =
        options.retryIntervalMs;
    }
  }

  const execution = machine.run(input as never, {
    overrides: { taskResourceLocalHandlers: handlers as never,
      retryIntervalOverrides },
  });
  stop.signal.addEventListener('abort', () => execution.abort());
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort);

  const history = new HistoryCount(states);
  const watching = (async () => {
    for await (const event of execution.eventLogs) {
      history.add(event);
      payloads.observe(event);
    }
  })();

  let output: unknown;
  let failure: unknown;
  try {
    output = await execution.result;
  } catch (error) {
    failure = error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  await watching;

  const report = {
    stateTransitions: history.transitions,
    largestPayload: payloads.largest,
    history: history.estimate(),
  };
  if (payloads.violation) {
    const { state, what, bytes } = payloads.violation;
    return {
      ...report, status: 'failed',
      error: { name: 'States.DataLimitExceeded',
        message: `the ${what} of state ${state} is ${bytes} bytes, over ` +
          `the ${limit}-byte limit of Step Functions` },
    };
  }
  if (failure === undefined) return { ...report, status: 'succeeded', output };

  return { ...report, status: 'failed', ...describeFailure(failure) };
}

function describeFailure(failure: unknown):
  Pick<LocalRunReport, 'error' | 'cause'> {
  if (failure instanceof ExecutionAbortedError) {
    return { error: { name: 'ExecutionAborted',
      message: 'the run was stopped' } };
  }

  const cause = failure instanceof ExecutionError ? failure.cause : failure;
  if (cause instanceof Error) {
    return { error: { name: cause.name, message: cause.message }, cause };
  }
  return { error: { name: 'Error', message: String(cause) }, cause };
}

/** Sizes of what states pass on, and the first one over the limit. */
class PayloadWatch {
  largest: PayloadRecord = { state: '(none)', what: 'input', bytes: 0 };
  violation?: PayloadRecord;
  readonly #limit: number;
  readonly #onViolation: () => void;
  /** Per running Map (keyed by its raw input): collected result size. */
  readonly #mapResults = new WeakMap<object, number>();

  constructor(limit: number, onViolation: () => void) {
    this.#limit = limit;
    this.#onViolation = onViolation;
  }

  measure(state: string, what: PayloadRecord['what'], value: unknown): void {
    this.#record({ state, what, bytes: jsonBytes(value) });
  }

  observe(event: EventLog): void {
    if (!event) return;
    if (event.type === 'StateEntered') {
      this.measure(event.state.name, 'input', event.state.input);
    } else if (event.type === 'StateExited') {
      this.measure(event.state.name, 'output', event.state.output);
    } else if (event.type === 'MapIterationSucceeded') {
      // a Map collects every iteration's output into one array before
      // ResultSelector and ResultPath see it: that array counts too
      const key = event.parentState.input;
      if (typeof key !== 'object' || key === null) return;
      const output = (event as { output?: unknown }).output;
      const bytes = (this.#mapResults.get(key) ?? 2) +
        jsonBytes(output) + 1;
      this.#mapResults.set(key, bytes);
      this.#record({ state: event.parentState.name, what: 'map result',
        bytes });
    }
  }

  #record(record: PayloadRecord): void {
    if (record.bytes > this.largest.bytes) this.largest = record;
    if (record.bytes > this.#limit && !this.violation) {
      this.violation = record;
      this.#onViolation();
    }
  }
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value ?? null));
}

interface StateInfo {
  name: string;
  type: string;
  timeoutSeconds?: number;
  retries: boolean;
  /** The DISTRIBUTED Map this state runs in as a child, if any. */
  childOf?: string;
  /** Ends an iteration of an INLINE Map. */
  endsIteration: boolean;
}

interface AslState {
  Type: string;
  TimeoutSeconds?: number;
  Retry?: unknown[];
  End?: boolean;
  ItemProcessor?: AslGraph & { ProcessorConfig?: { Mode?: string } };
  Iterator?: AslGraph;
  Branches?: AslGraph[];
}

interface AslGraph {
  States: Record<string, unknown>;
}

/** Every state of the definition by name, nested ones included. */
function describeStates(definition: WorkflowDefinition):
  Map<string, StateInfo> {
  const states = new Map<string, StateInfo>();

  const visit = (graph: AslGraph, childOf: string | undefined,
    inlineMap: boolean) => {
    for (const [name, raw] of Object.entries(graph.States)) {
      const state = raw as AslState;
      states.set(name, {
        name,
        type: state.Type,
        timeoutSeconds: state.TimeoutSeconds,
        retries: (state.Retry?.length ?? 0) > 0,
        childOf,
        endsIteration: inlineMap && (state.End === true ||
          state.Type === 'Succeed' || state.Type === 'Fail'),
      });

      const processor = state.ItemProcessor ?? state.Iterator;
      if (processor) {
        const distributed = state.ItemProcessor?.ProcessorConfig?.Mode ===
          'DISTRIBUTED';
        visit(processor, distributed ? name : childOf, !distributed);
      }
      for (const branch of state.Branches ?? []) {
        visit(branch, childOf, false);
      }
    }
  };

  visit(definition, undefined, false);
  return states;
}

/**
 * Counts history events as Step Functions would record them: a Task is
 * entered, scheduled, started, succeeded (or failed) and exited; other
 * states are entered and exited; an INLINE Map adds a start and an end
 * event per iteration to the execution it runs in, while a DISTRIBUTED
 * Map's iterations are child executions with histories of their own.
 */
class HistoryCount {
  transitions = 0;
  #parent = 2;
  readonly #children = new Map<string, number>();
  readonly #states: Map<string, StateInfo>;

  constructor(states: Map<string, StateInfo>) {
    this.#states = states;
  }

  add(event: EventLog): void {
    if (!event || !('state' in event)) return;
    const info = this.#states.get(event.state.name);
    if (!info) return;

    let events = 0;
    switch (event.type) {
      case 'StateEntered':
        this.transitions++;
        events = info.type === 'Task' ? 4 : info.type === 'Map' ? 2 : 1;
        break;
      case 'StateExited':
        events = info.type === 'Map' ? 2 : 1;
        if (info.endsIteration) events += 2;
        break;
      case 'StateRetried':
        events = 2;
        break;
      case 'StateFailed':
        events = info.type === 'Task' ? 0 : 1;
        break;
      default:
        return;
    }

    if (info.childOf === undefined) {
      this.#parent += events;
      return;
    }
    // a child execution is one iteration of the DISTRIBUTED Map: the
    // root-level index the library stamps on forwarded events
    const key = `${info.childOf}#${event.index ?? 0}`;
    this.#children.set(key, (this.#children.get(key) ?? 2) + events);
  }

  estimate(): HistoryEstimate {
    return {
      parent: this.#parent,
      children: this.#children.size,
      largestChild: Math.max(0, ...this.#children.values()),
    };
  }
}
