/**
 * prom-client's registry and metric classes, from the package's own `lib/` files rather than its
 * index (ADR 0205). The index also loads the default process metrics, one of which requires
 * `@opentelemetry/api` (51 modules): 88 modules and ~15 MiB of RSS in a process that needs only
 * these four classes. The index re-exports these very files, so a metric made here and a registry
 * from `prom-client` are the same classes. prom-client 15 has no `exports` map; the `lib/` layout
 * is pinned by the unit test beside this file, which fails if an upgrade moves it.
 */
import Counter from 'prom-client/lib/counter.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';

export { Counter, Gauge, Histogram, Registry };
