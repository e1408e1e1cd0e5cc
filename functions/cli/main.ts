// `npm start -- COMMAND [OPTIONS]`: picks the command's module and runs it.
//
// Each command is a module of its own, loaded only when asked for (so one
// command's dependencies never slow another), that exports
// `main(args): Promise<number>` returning the exit status.

import { ExitCode, processTerminal, reportError } from './output.js';

interface Command {
  summary: string;
  load(): Promise<{ main(args: string[]): Promise<number> }>;
}

const COMMANDS: Record<string, Command> = {
  copy: {
    summary: 'copy one image, with every platform, between registries',
    load: () => import('./copy.js'),
  },
  run: {
    summary: 'back up every package of an org or user (local workflow)',
    load: () => import('./run.js'),
  },
  start: {
    summary: 'start a backup run of the deployed stack on AWS',
    load: () => import('./start.js'),
  },
  status: {
    summary: 'show the latest runs of the deployed stack on AWS',
    load: () => import('./status.js'),
  },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' ||
    name === 'help') {
    printHelp(name === undefined ? processTerminal.stderr
      : processTerminal.stdout);
    return name === undefined ? ExitCode.usage : ExitCode.ok;
  }

  const command = COMMANDS[name];
  if (!command) {
    processTerminal.stderr.write(`error: unknown command "${name}"\n`);
    printHelp(processTerminal.stderr);
    return ExitCode.usage;
  }

  const module = await command.load();
  return module.main(args);
}

function printHelp(stream: NodeJS.WritableStream): void {
  const lines = ['Usage: npm start -- COMMAND [OPTIONS]', '', 'Commands:'];
  for (const [name, command] of Object.entries(COMMANDS)) {
    lines.push(`  ${name.padEnd(8)} ${command.summary}`);
  }
  lines.push('', 'Run `npm start -- COMMAND --help` for its options.');
  stream.write(`${lines.join('\n')}\n`);
}

// a reader that closes the pipe early (`| head`) has all it wanted: leave
// quietly instead of dying on the write
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
}

main(process.argv.slice(2)).then(
  (status) => { process.exitCode = status; },
  (error: unknown) => {
    process.exitCode = reportError(processTerminal, error, 'help');
  });
