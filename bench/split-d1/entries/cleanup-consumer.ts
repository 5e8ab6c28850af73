// The cleanup-consumer as deployed, with its D1 in the bench's other process (../src/remote-d1.ts).
import app from "../../../apps/cleanup-consumer/src/index.ts";
import { withRemoteD1 } from "../src/remote-d1.ts";

export default withRemoteD1(app);
