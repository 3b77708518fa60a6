// The several-hosts test set-up (scripts/testhost/fleet-up.sh), as the fleet tests use it.
import { fleetEnv } from '../../scripts/lib/fleet.mjs'

export { runAction, type ActionRun } from '../../scripts/lib/action.mjs'
export {
  addr,
  APP_HOSTS,
  ctl,
  fleetInputs,
  hostDocker,
  image,
  privateAddr,
  replicasOn,
  resetFleetApp,
  type AppHostName,
} from '../../scripts/lib/fleet.mjs'

/** The fleet's facts (FLEET_* of .testhost/fleet.env). */
export const fleet: Record<string, string> = fleetEnv()
