/** `smcr sample FILE`: writes the sample SMC-Rv2 connection capture (see sample.ts). */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { buildSampleHandshake } from '../sample.js';

export function registerSample(program: Command, out: (s: string) => void): void {
  program
    .command('sample')
    .description('write a pcap of one complete sample SMC-Rv2 connection (TCP option, CLC, LLC, CDC over RoCEv2)')
    .argument('<file>', 'pcap file to write')
    .action((file: string) => {
      const pcap = buildSampleHandshake();
      writeFileSync(file, pcap);
      out(`wrote ${file} (${pcap.length} bytes)\n`);
    });
}
