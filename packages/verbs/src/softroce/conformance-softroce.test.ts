// The verbs conformance suite against the softroce provider: two devices of this process,
// 127.0.0.1 and 127.0.0.2, each with its own UDP socket on port 4791, talking real RoCEv2 over lo.
import { verbsConformance } from '../testing/conformance.js';
import { SoftRoceProvider } from './provider.js';

verbsConformance('softroce', async () => {
  const provider = new SoftRoceProvider({
    devices: [
      { name: 'sr0', ip: '127.0.0.1' },
      { name: 'sr1', ip: '127.0.0.2' },
    ],
  });
  const a = await provider.open('sr0');
  const b = await provider.open('sr1');
  return {
    a,
    b,
    async cleanup() {
      await a.close();
      await b.close();
    },
  };
});
