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
// - A count of history events per execution (the parent, and each child
//   of a DISTRIBUTED Map), the way Step Functions records them, to check
//   the 25,000-event limit.
//
// The library forwards a Map iteration's events to its parent's log, but
// drops those that arrive after the parent finished, so the root log alone
// misses events of nested Maps. Instead every execution's own log is read:
// `StateMachine.prototype.run`, which the library also uses for each Map
// iteration, is wrapped once so that each execution of a run of ours hands
// its events to that run's tracker as they are produced.

import { AsyncLocalStorage } from 'node:async_hooks';

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
  /**
   * Check the definition against the States Language schema first. That
   * takes longer than an unchanged rerun's own work; a definition that
   * CDK synthesized, and the tests validate, can skip it.
   * @default true
   */
  validate?: boolean;
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
type EventLog = NonNullable<
  Awaited<ReturnType<Execution['eventLogs']['next']>>['value']>;

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
    { validationOptions: options.validate === false ? { noValidate: true }
      : { checkArn: true, checkPaths: true } });
  const stop = new AbortController();
  const tracker = new RunTracker(options.definition, states, limit,
    () => stop.abort());
  tracker.payloads.measure('(execution)', 'execution input', input);

  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const state of states.values()) {
    if (state.type !== 'Task') continue;
    const handler = options.handlers[state.name]!;
    const timeoutMs = (state.timeoutSeconds ?? DEFAULT_TASK_TIMEOUT_SECONDS)
      * 1000;

    handlers[state.name] = async (taskInput) => {
      tracker.payloads.measure(state.name, 'input', taskInput);
      const started = Date.now();
      const output = await handler(taskInput, {
        getRemainingTimeInMillis: () => timeoutMs - (Date.now() - started),
        signal: stop.signal,
        stateName: state.name,
      });
      tracker.payloads.measure(state.name, 'output', output);
      return (output ?? null) as never;
    };
  }

  const retryIntervalOverrides: Record<string, number> = {};
  if (options.retryIntervalMs !== undefined) {
    for (const state of states.values()) {
      if (state.retries) {
        retryIntervalOverrides[state.name] = options.retryIntervalMs;
      }
    }
  }

  installTap();
  trackers.set(handlers, tracker);
  const execution = machine.run(input as never, {
    overrides: { taskResourceLocalHandlers: handlers as never,
      retryIntervalOverrides },
  });
  tracker.drain(execution.eventLogs);
  stop.signal.addEventListener('abort', () => execution.abort());
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort);

  let output: unknown;
  let failure: unknown;
  try {
    output = await execution.result;
  } catch (error) {
    failure = error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  await tracker.settled();

  const report = {
    stateTransitions: tracker.history.transitions,
    largestPayload: tracker.payloads.largest,
    history: tracker.history.estimate(),
  };
  if (tracker.payloads.violation) {
    const { state, what, bytes } = tracker.payloads.violation;
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

/** Our runs by their handlers object, which every nested run shares. */
const trackers = new WeakMap<object, RunTracker>();

/** The DISTRIBUTED Map child execution a nested run belongs to. */
const childExecution = new AsyncLocalStorage<string | undefined>();

let tapInstalled = false;

/**
 * Wraps `StateMachine.prototype.run` once: a run of ours (the root and
 * every Map iteration, which the library starts with the same run options)
 * gets its events read as they come, and a DISTRIBUTED iteration starts a
 * child execution that its nested runs inherit.
 */
function installTap(): void {
  if (tapInstalled) return;
  tapInstalled = true;

  const run = StateMachine.prototype.run;
  StateMachine.prototype.run = function tapped(this: StateMachine,
    input, runOptions) {
    const handlers = runOptions?.overrides?.taskResourceLocalHandlers;
    const tracker = handlers ? trackers.get(handlers) : undefined;
    if (!tracker) return run.call(this, input, runOptions);

    const graph = (this as unknown as { definition: AslGraph }).definition;
    const child = graph.ProcessorConfig?.Mode === 'DISTRIBUTED'
      ? tracker.history.startChild() : childExecution.getStore();
    const execution = childExecution.run(child,
      () => run.call(this, input, runOptions));
    return { ...execution,
      eventLogs: tracker.read(execution.eventLogs, graph, child, this) };
  };
}

/** What one run of ours measures, from every execution's own events. */
class RunTracker {
  readonly payloads: PayloadWatch;
  readonly history: HistoryCount;
  readonly #reading = new Set<Promise<void>>();
  readonly #root: AslGraph;
  /** Each Map's item processor -> the Map state's name. */
  readonly #mapNames = new Map<AslGraph, string>();

  constructor(definition: WorkflowDefinition, states: Map<string, StateInfo>,
    limit: number, onViolation: () => void) {
    this.#root = definition;
    this.payloads = new PayloadWatch(limit, onViolation);
    this.history = new HistoryCount(states);
    for (const state of states.values()) {
      if (state.processor) this.#mapNames.set(state.processor, state.name);
    }
  }

  /**
   * Passes an execution's events on to the library (which forwards them
   * to the parent's log) after observing those of the execution itself.
   */
  read(source: AsyncGenerator<EventLog>, graph: AslGraph,
    child: string | undefined, machine: object): AsyncGenerator<EventLog> {
    const own = new Set(Object.keys(graph.States));
    const iteration = graph !== this.#root;
    const isOwn = (event: EventLog) => 'state' in event
      ? own.has(event.state.name)
      : 'parentState' in event ? own.has(event.parentState.name) : true;

    let done!: () => void;
    const reading = new Promise<void>((resolve) => {
      done = resolve;
    });
    this.#reading.add(reading);

    const observe = (event: EventLog) => {
      if (!isOwn(event)) return;
      this.history.add(event, child);
      this.payloads.observe(event);

      // a Map collects its iterations' outputs (each iteration runs on
      // the Map's own iterator machine) into one array
      if (iteration && event.type === 'ExecutionSucceeded') {
        this.payloads.collect(machine, this.#mapNames.get(graph) ?? '(map)',
          event.output);
      }
    };
    return (async function* observed() {
      try {
        for await (const event of source) {
          observe(event);
          yield event;
        }
      } finally {
        done();
      }
    })();
  }

  /**
   * Resolves once every execution's log was read to its end. The root's
   * log is read here; the library reads the iterations' logs itself.
   */
  async settled(): Promise<void> {
    while (this.#reading.size > 0) {
      const pending = [...this.#reading];
      this.#reading.clear();
      await Promise.all(pending);
    }
  }

  /** Reads the root execution's log to its end. */
  drain(source: AsyncGenerator<EventLog>): void {
    void (async () => {
      for await (const event of source) {
        void event; // observed by read() on its way
      }
    })();
  }
}

/** Sizes of what states pass on, and the first one over the limit. */
class PayloadWatch {
  largest: PayloadRecord = { state: '(none)', what: 'input', bytes: 0 };
  violation?: PayloadRecord;
  readonly #limit: number;
  readonly #onViolation: () => void;
  /** Per running Map (keyed by its iterator): collected result size. */
  readonly #mapResults = new WeakMap<object, number>();

  constructor(limit: number, onViolation: () => void) {
    this.#limit = limit;
    this.#onViolation = onViolation;
  }

  measure(state: string, what: PayloadRecord['what'], value: unknown): void {
    this.#record({ state, what, bytes: jsonBytes(value) });
  }

  observe(event: EventLog): void {
    if (event.type === 'StateEntered') {
      this.measure(event.state.name, 'input', event.state.input);
    } else if (event.type === 'StateExited') {
      this.measure(event.state.name, 'output', event.state.output);
    }
  }

  /**
   * One iteration's output, added to its Map's collected result: the
   * array that ResultSelector and ResultPath see counts too.
   */
  collect(map: object, state: string, output: unknown): void {
    const bytes = (this.#mapResults.get(map) ?? 2) + jsonBytes(output) + 1;
    this.#mapResults.set(map, bytes);
    this.#record({ state, what: 'map result', bytes });
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
  /** A Map's item processor. */
  processor?: AslGraph;
}

interface AslState {
  Type: string;
  TimeoutSeconds?: number;
  Retry?: unknown[];
  ItemProcessor?: AslGraph;
  Iterator?: AslGraph;
  Branches?: AslGraph[];
}

interface AslGraph {
  States: Record<string, unknown>;
  ProcessorConfig?: { Mode?: string };
}

/** Every state of the definition by name, nested ones included. */
function describeStates(definition: WorkflowDefinition):
  Map<string, StateInfo> {
  const states = new Map<string, StateInfo>();

  const visit = (graph: AslGraph) => {
    for (const [name, raw] of Object.entries(graph.States)) {
      const state = raw as AslState;
      const processor = state.ItemProcessor ?? state.Iterator;
      states.set(name, {
        name,
        type: state.Type,
        timeoutSeconds: state.TimeoutSeconds,
        retries: (state.Retry?.length ?? 0) > 0,
        processor,
      });

      if (processor) visit(processor);
      for (const branch of state.Branches ?? []) visit(branch);
    }
  };

  visit(definition);
  return states;
}

/**
 * Counts history events as Step Functions records them: a Task is
 * entered, scheduled, started, succeeded (or failed) and exited, a retry
 * schedules, starts and ends it again; other states are entered and
 * exited; an INLINE Map adds a start and an end event per iteration to
 * the execution it runs in, while a DISTRIBUTED Map's iterations are child
 * executions with histories of their own.
 */
class HistoryCount {
  transitions = 0;
  #parent = 0;
  #nextChild = 0;
  readonly #children = new Map<string, number>();
  readonly #states: Map<string, StateInfo>;

  constructor(states: Map<string, StateInfo>) {
    this.#states = states;
  }

  startChild(): string {
    const key = `child-${this.#nextChild++}`;
    this.#children.set(key, 0);
    return key;
  }

  /**
   * One event of an execution's own log. An INLINE iteration's start and
   * end stand for the MapIterationStarted and MapIterationSucceeded events
   * of the execution it runs in (whose own copies the library may drop).
   */
  add(event: EventLog, child: string | undefined): void {
    let events = 0;
    switch (event.type) {
      case 'ExecutionStarted':
      case 'ExecutionSucceeded':
      case 'ExecutionFailed':
        events = 1;
        break;
      case 'StateEntered': {
        this.transitions++;
        const type = this.#states.get(event.state.name)?.type;
        events = type === 'Task' ? 4 : type === 'Map' ? 2 : 1;
        break;
      }
      case 'StateExited':
        events = this.#states.get(event.state.name)?.type === 'Map' ? 2 : 1;
        break;
      case 'StateRetried':
        events = 3;
        break;
      case 'StateFailed':
        events = this.#states.get(event.state.name)?.type === 'Task' ? 0 : 1;
        break;
      default:
        return;
    }

    if (child === undefined) {
      this.#parent += events;
    } else {
      this.#children.set(child, (this.#children.get(child) ?? 0) + events);
    }
  }

  estimate(): HistoryEstimate {
    let largestChild = 0;
    for (const count of this.#children.values()) {
      largestChild = Math.max(largestChild, count);
    }
    return {
      parent: this.#parent,
      children: this.#children.size,
      largestChild,
    };
  }
}
