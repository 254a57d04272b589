"""The offline engine: the real program run on Pulumi's mock engine, for `plan`, `render`,
`local` and the tests. `engine` answers look-ups and computed outputs, `monitor` records
every registration (the one place that leans on Pulumi's SDK internals), `stack_files`
reads a stack's config as the CLI would hand it over, `zones` holds AWS's per-region data."""

from stun_infra.cloud.offline.engine import OfflineMocks, OfflineRun, UnknownInvoke, run_offline, run_program
from stun_infra.cloud.offline.monitor import RecordingMonitor, Registration, unwrap_secrets
from stun_infra.cloud.offline.stack_files import UNSEEN_SECRET, engine_string, stack_config, stack_settings
from stun_infra.cloud.offline.zones import ZONES_FILE, NoOfflineData, offered_in, region_data

__all__ = ["NoOfflineData", "OfflineMocks", "OfflineRun", "RecordingMonitor", "Registration", "UNSEEN_SECRET",
           "UnknownInvoke", "ZONES_FILE", "engine_string", "offered_in", "region_data", "run_offline", "run_program",
           "stack_config", "stack_settings", "unwrap_secrets"]
