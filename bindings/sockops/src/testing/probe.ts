/**
 * Child process of availability.test.ts, run under setpriv (as uid 65534, or as root with no
 * capabilities): prints one JSON line with what sockopsAvailability() and open() say, and whether
 * the BPF-free TCP_SAVE_SYN check works there (it needs no privilege).
 */
import net from 'node:net';
import { SmcOptionProgram, SockopsError, saveSyn, savedSynOffersSmc, sockopsAvailability } from '../index.js';

async function savedSynCheck(): Promise<{ first: boolean | null; second: boolean | null } | string> {
  const server = net.createServer();
  try {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    saveSyn(server);
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const sock = await accepted;
    const first = savedSynOffersSmc(sock);
    const second = savedSynOffersSmc(sock); // the kernel hands the SYN out once
    client.destroy();
    sock.destroy();
    return { first: first ?? null, second: second ?? null };
  } catch (e) {
    return (e as Error).message;
  } finally {
    server.close();
  }
}

const availability = sockopsAvailability();
let openError: { code: string; message: string } | undefined;
try {
  SmcOptionProgram.open().close();
} catch (e) {
  openError = e instanceof SockopsError ? { code: e.code, message: e.message } : { code: 'not a SockopsError', message: String(e) };
}
const uid = process.getuid?.();
process.stdout.write(`${JSON.stringify({ uid, availability, openError, savedSyn: await savedSynCheck() })}\n`);
