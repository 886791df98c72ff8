// The verbs conformance suite against the mem provider: two devices of one in-process fabric.
import { MemProvider } from '../mem/provider.js';
import { verbsConformance } from './conformance.js';

verbsConformance('mem', async () => {
  const provider = new MemProvider();
  const a = await provider.open('mem0');
  const b = await provider.open('mem1');
  return {
    a,
    b,
    async cleanup() {
      await a.close();
      await b.close();
    },
  };
});
