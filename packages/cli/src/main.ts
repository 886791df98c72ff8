/**
 * `smcr`: the command-line entry. One bin; each object/command is a small module.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { registerDecode } from './commands/decode.js';
import { registerSample } from './commands/sample.js';

export function buildProgram(out: (s: string) => void, err: (s: string) => void): Command {
  const program = new Command('smcr')
    .description('SMC-R (Shared Memory Communications over RDMA) tools for the smc-r userspace stack')
    .configureOutput({ writeOut: out, writeErr: err })
    .exitOverride()
    .showHelpAfterError();
  registerDecode(program, out);
  registerSample(program, out);
  return program;
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], out = (s: string) => { process.stdout.write(s); }, err = (s: string) => { process.stderr.write(s); }): Promise<number> {
  const program = buildProgram(out, err);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    const x = e as { code?: string; message?: string };
    err(`smcr: ${x.message ?? String(e)}${x.code ? ` [${x.code}]` : ''}\n`);
    return 1;
  }
}

export { InvalidArgumentError, Option };
