#!/usr/bin/env -S node --max-semi-space-size=2
// The shebang's flag spares the executable a relaunch; every other launch gets the same limit from
// relaunchWithHeapLimits (cli/launch.ts), which must run before the CLI's modules load: hence the
// dynamic import below, not a static one (static imports would all load first).
import { relaunchWithHeapLimits } from './launch.js';

relaunchWithHeapLimits();
const { main } = await import('./program.js');
process.exitCode = await main(process.argv.slice(2));
