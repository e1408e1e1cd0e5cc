// The org backup as a Step Functions workflow, built from the Lambda
// functions the stack hands in. The same definition runs locally (see
// synthesizeWorkflowDefinition) with the handlers in-process.
//
// Shape, and why it stays small at any size:
//
//   ListAndSelect -> BackupPages (Map over page numbers)
//                      CheckPage -> CopyImages (Map over indexes)
//                        CopyImage <-> CopyFinished (loop while incomplete)
//                        a failure caught -> RecordCopyFailure
//                 -> Summarize -> CheckOutcome -> Done | BackupFailed
//
// The plan lives in the RunStore in pages; states carry a run id, page
// numbers and indexes, never images, so no state input or output nears the
// 256 KiB payload limit. History: in DISTRIBUTED mode each page is a child
// execution with its own 25,000-event history. A page of P images costs
// about 11 events per image plus ~7 per continuation or retry, so a page of
// 100 images stays under ~2,000 events, while the parent execution records
// a constant handful of events whatever the number of pages.

import { App, Duration, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';

/** State names: the local runner binds its handlers by them. */
export const StateName = {
  listAndSelect: 'ListAndSelect',
  backupPages: 'BackupPages',
  checkPage: 'CheckPage',
  copyImages: 'CopyImages',
  copyImage: 'CopyImage',
  copyFinished: 'CopyFinished',
  recordCopyFailure: 'RecordCopyFailure',
  imageDone: 'ImageDone',
  summarize: 'Summarize',
  checkOutcome: 'CheckOutcome',
  done: 'Done',
  backupFailed: 'BackupFailed',
} as const;

/** Error names a copy may end with; each is recorded, none stops a run. */
export const COPY_ERROR_NAMES = [
  'TransientError',
  'AuthenticationError',
  'NotFoundError',
  'InvalidInputError',
  'IntegrityError',
  'InterruptedError',
] as const;

export interface BackupWorkflowProps {
  /** Lists, selects, stores the plan (functions/list-and-select). */
  readonly listAndSelect: lambda.IFunction;
  /** Checks one page's tags on the target (functions/check-page). */
  readonly checkPage: lambda.IFunction;
  /** Copies one image, or records its failure (functions/copy-image). */
  readonly copyImage: lambda.IFunction;
  /** Totals the results, updates the inventory (functions/summarize). */
  readonly summarize: lambda.IFunction;

  /**
   * Run the page fan-out as a DISTRIBUTED Map, each page a child execution
   * with its own event history. Turn off only for small orgs or tests.
   * @default true
   */
  readonly distributed?: boolean;

  /**
   * How long one CopyImage invocation may take before Step Functions gives
   * up on it. The handler stops starting new work well before its Lambda
   * timeout, and the workflow continues the copy in a new invocation.
   * @default the copyImage function's timeout when it is known, else 15 minutes
   */
  readonly copyTimeout?: Duration;

  /**
   * How long ListAndSelect, CheckPage and Summarize may take.
   * @default each function's timeout when it is known, else 15 minutes
   */
  readonly stepTimeout?: Duration;

  /**
   * Longest a whole run may take.
   * @default Duration.hours(24)
   */
  readonly timeout?: Duration;

  /**
   * Execution logging.
   * @default - no logging
   */
  readonly logs?: sfn.LogOptions;

  /**
   * X-Ray tracing of executions.
   * @default false
   */
  readonly tracingEnabled?: boolean;

  /**
   * @default - a name CloudFormation generates
   */
  readonly stateMachineName?: string;
}

const DEFAULT_TASK_TIMEOUT = Duration.minutes(15);

/**
 * The org backup state machine (Standard type). The functions' invoke
 * permissions are granted by the state machine's role.
 */
export class BackupWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;

  constructor(scope: Construct, id: string, props: BackupWorkflowProps) {
    super(scope, id);

    const timeout = props.timeout ?? Duration.hours(24);
    validateDuration('timeout', timeout, Duration.minutes(1),
      Duration.days(365));
    if (props.copyTimeout) {
      validateDuration('copyTimeout', props.copyTimeout,
        Duration.seconds(30), Duration.minutes(15));
    }
    if (props.stepTimeout) {
      validateDuration('stepTimeout', props.stepTimeout,
        Duration.seconds(30), Duration.minutes(15));
    }

    const definition = buildDefinition(this, props);
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      stateMachineType: sfn.StateMachineType.STANDARD,
      timeout,
      logs: props.logs,
      tracingEnabled: props.tracingEnabled ?? false,
      stateMachineName: props.stateMachineName,
    });
  }
}

function buildDefinition(scope: Construct, props: BackupWorkflowProps):
  sfn.IChainable {
  const stepTimeout = (fn: lambda.IFunction) =>
    props.stepTimeout ?? functionTimeout(fn) ?? DEFAULT_TASK_TIMEOUT;

  const listAndSelect = invoke(scope, StateName.listAndSelect,
    props.listAndSelect, stepTimeout(props.listAndSelect), {
      comment: 'Lists the packages, selects the tags, stores the plan in ' +
        'pages; returns the run id and page numbers.',
      // a retry lists the whole org again, and an unreachable target
      // should fail the run soon: one more attempt only
      transientAttempts: 1,
    });

  // one page: check its tags on the target, copy what needs it
  const checkPage = invoke(scope, StateName.checkPage, props.checkPage,
    stepTimeout(props.checkPage), {
      comment: 'One manifest HEAD on the target per tag; returns indexes ' +
        'of the images that need a copy.',
      resultPath: '$.check',
    });

  const copyImage = invoke(scope, StateName.copyImage, props.copyImage,
    props.copyTimeout ?? functionTimeout(props.copyImage) ??
      DEFAULT_TASK_TIMEOUT, {
      comment: 'Copies one image; returns incomplete when it stopped ' +
        'before its deadline, to be continued.',
      payload: sfn.TaskInput.fromObject({
        'runId.$': '$.runId',
        'page.$': '$.page',
        'index.$': '$.index',
        'previous.$': '$.copy',
      }),
      resultPath: '$.copy',
    });

  const recordCopyFailure = invoke(scope, StateName.recordCopyFailure,
    props.copyImage, stepTimeout(props.copyImage), {
      comment: 'Records a copy that failed, so the others go on and the ' +
        'summary names it.',
      payload: sfn.TaskInput.fromObject({
        action: 'record-failure',
        'runId.$': '$.runId',
        'page.$': '$.page',
        'index.$': '$.index',
        'error.$': '$.error',
      }),
      resultPath: sfn.JsonPath.DISCARD,
      // recording must not itself fail an image twice: retry anything
      retryAll: true,
    });

  // an iteration's output is its index: the page's Map collects 500 of
  // them, so each must stay tiny
  const imageDone = new sfn.Succeed(scope, StateName.imageDone, {
    outputPath: '$.index',
  });
  recordCopyFailure.next(imageDone);

  // catch by name first, then anything else (a crash, a Lambda timeout):
  // one image's failure never stops the others
  copyImage.addCatch(recordCopyFailure, {
    errors: [...COPY_ERROR_NAMES],
    resultPath: '$.error',
  });
  copyImage.addCatch(recordCopyFailure, {
    errors: [sfn.Errors.ALL],
    resultPath: '$.error',
  });

  const copyFinished = new sfn.Choice(scope, StateName.copyFinished, {
    comment: 'An incomplete copy stopped before its Lambda timeout; the ' +
      'next invocation skips what was copied and goes on.',
  })
    .when(sfn.Condition.stringEquals('$.copy.status', 'incomplete'),
      copyImage)
    .otherwise(imageDone);

  const copyImages = new sfn.Map(scope, StateName.copyImages, {
    comment: 'One iteration per image of the page that needs a copy.',
    itemsPath: '$.check.work',
    itemSelector: {
      'runId.$': '$.runId',
      'page.$': '$.page',
      'index.$': '$$.Map.Item.Value',
      // replaced by each CopyImage's outcome, which a continuation reads
      copy: { status: 'new' },
    },
    maxConcurrencyPath: '$.imageConcurrency',
    resultPath: sfn.JsonPath.DISCARD,
    // a page's result is its number: the page fan-out's result stays tiny
    outputPath: '$.page',
  });
  copyImages.itemProcessor(copyImage.next(copyFinished));

  const pageChain = checkPage.next(copyImages);

  const pageMapProps = {
    comment: 'One iteration per page of the plan.',
    itemsPath: '$.pages',
    itemSelector: {
      'runId.$': '$.runId',
      'page.$': '$$.Map.Item.Value',
      'imageConcurrency.$': '$.concurrency.images',
    },
    maxConcurrencyPath: '$.concurrency.pages',
    resultPath: sfn.JsonPath.DISCARD,
  };
  const backupPages = (props.distributed ?? true)
    ? new sfn.DistributedMap(scope, StateName.backupPages, {
      ...pageMapProps,
      mapExecutionType: sfn.StateMachineType.STANDARD,
      label: 'BackupPages',
    }).itemProcessor(pageChain)
    : new sfn.Map(scope, StateName.backupPages, pageMapProps)
      .itemProcessor(pageChain);

  const summarize = invoke(scope, StateName.summarize, props.summarize,
    stepTimeout(props.summarize), {
      comment: 'Totals the results, updates the inventory, emits metrics; ' +
        'returns a small summary.',
    });

  // a page that failed as a whole (the target refused us) still gets a
  // summary of what was done before the run fails
  backupPages.addCatch(summarize, {
    errors: [sfn.Errors.ALL],
    resultPath: '$.failure',
  });

  const checkOutcome = new sfn.Choice(scope, StateName.checkOutcome)
    .when(sfn.Condition.booleanEquals('$.succeeded', true),
      new sfn.Succeed(scope, StateName.done))
    .otherwise(new sfn.Fail(scope, StateName.backupFailed, {
      comment: 'Fails the execution after Summarize recorded everything, ' +
        'so alarms on failed executions catch it.',
      errorPath: '$.error.name',
      causePath: '$.error.message',
    }));

  return listAndSelect
    .next(backupPages)
    .next(summarize)
    .next(checkOutcome);
}

interface InvokeOptions {
  comment: string;
  payload?: sfn.TaskInput;
  resultPath?: string;
  /** Retries of a TransientError. @default 3 */
  transientAttempts?: number;
  retryAll?: boolean;
}

/**
 * A Lambda task whose result is the handler's value as is (no `Payload`
 * wrapper), as the local runner returns it too.
 */
function invoke(scope: Construct, name: string, fn: lambda.IFunction,
  timeout: Duration, options: InvokeOptions): tasks.LambdaInvoke {
  const task = new tasks.LambdaInvoke(scope, name, {
    lambdaFunction: fn,
    payloadResponseOnly: true,
    payload: options.payload,
    resultPath: options.resultPath,
    taskTimeout: sfn.Timeout.duration(timeout),
    comment: options.comment,
  });

  // the registry client already retried within the invocation; these
  // retries span a longer outage
  task.addRetry({
    errors: ['TransientError'],
    interval: Duration.seconds(5),
    backoffRate: 2,
    maxAttempts: options.transientAttempts ?? 3,
    maxDelay: Duration.minutes(1),
    jitterStrategy: sfn.JitterType.FULL,
  });
  task.addRetry({
    errors: ['Lambda.TooManyRequestsException'],
    interval: Duration.seconds(2),
    backoffRate: 2,
    maxAttempts: 6,
    jitterStrategy: sfn.JitterType.FULL,
  });
  if (options.retryAll) {
    task.addRetry({
      errors: [sfn.Errors.ALL],
      interval: Duration.seconds(2),
      backoffRate: 2,
      maxAttempts: 3,
    });
  }
  return task;
}

function functionTimeout(fn: lambda.IFunction): Duration | undefined {
  return fn instanceof lambda.Function ? fn.timeout : undefined;
}

function validateDuration(name: string, value: Duration, min: Duration,
  max: Duration): void {
  if (value.isUnresolved()) return;
  const seconds = value.toSeconds();
  if (seconds < min.toSeconds() || seconds > max.toSeconds()) {
    throw new Error(`BackupWorkflow: ${name} is ${value.toHumanString()}; ` +
      `set it between ${min.toHumanString()} and ${max.toHumanString()}.`);
  }
}

/** The Amazon States Language document of a workflow, as JSON. */
export interface WorkflowDefinition {
  StartAt: string;
  States: Record<string, unknown>;
  Comment?: string;
  TimeoutSeconds?: number;
}

export interface SynthesizeOptions {
  /** @default true, as deployed */
  readonly distributed?: boolean;
  /** @default 15 minutes, the Lambda maximum */
  readonly copyTimeout?: Duration;
}

/**
 * Builds the workflow in a throwaway app with placeholder functions and
 * returns its definition, for running it locally. The placeholders' ARNs
 * stand in the Task resources; the local runner replaces every Task by the
 * handler of the same state name.
 */
export function synthesizeWorkflowDefinition(
  options: SynthesizeOptions = {},
): WorkflowDefinition {
  const app = new App();
  const stack = new Stack(app, 'GhcrBackupLocal', {
    env: { account: '123456789012', region: 'us-east-1' },
  });

  const placeholder = (name: string) => lambda.Function.fromFunctionAttributes(
    stack, name, {
      functionArn:
        `arn:aws:lambda:us-east-1:123456789012:function:ghcr-backup-${name}`,
      sameEnvironment: true,
    });
  const workflow = new BackupWorkflow(stack, 'Workflow', {
    listAndSelect: placeholder('ListAndSelect'),
    checkPage: placeholder('CheckPage'),
    copyImage: placeholder('CopyImage'),
    summarize: placeholder('Summarize'),
    distributed: options.distributed,
    copyTimeout: options.copyTimeout,
  });

  const cfn = workflow.stateMachine.node.defaultChild as sfn.CfnStateMachine;
  const text = joinResolved(stack.resolve(cfn.definitionString));
  return JSON.parse(text) as WorkflowDefinition;
}

/** A resolved CloudFormation string: a literal or an Fn::Join of them. */
function joinResolved(value: unknown): string {
  if (typeof value === 'string') return value;

  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) {
    const [separator, parts] = join;
    return parts.map((part) => {
      if (typeof part === 'string') return part;
      if ((part as { Ref?: string }).Ref === 'AWS::Partition') return 'aws';
      return joinResolved(part);
    }).join(separator);
  }

  throw new Error('the workflow definition holds a value only CloudFormation ' +
    `can resolve: ${JSON.stringify(value).slice(0, 200)}`);
}
