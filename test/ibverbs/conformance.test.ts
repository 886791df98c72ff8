/**
 * The verbs conformance suite (the one mem and softroce pass) against the ibverbs binding over the
 * C test device: every verb goes through koffi into the exported ibv_* symbols or the context's
 * ops table, exactly the calls made on a real RNIC. What the test device cannot prove about real
 * hardware is listed in bindings/ibverbs/README.md.
 */
import { IbverbsProvider } from '@smc-r/ibverbs';
import { verbsConformance, type ConformancePair } from '../../packages/verbs/src/testing/conformance.js';
import { testDeviceOrSkip } from './support/device.js';

let libraryPath = '';

describe('ibverbs binding over the C test device', function () {
  before(function () {
    libraryPath = testDeviceOrSkip(this);
  });

  verbsConformance('ibverbs (C test device)', async () => {
    const p = new IbverbsProvider({ libraryPath });
    const a = await p.open('fake0');
    const b = await p.open('fake1');
    // dist and src declarations of the same interface (branded types are declared twice)
    return { a, b, async cleanup() { await a.close(); await b.close(); } } as unknown as ConformancePair;
  });
});
