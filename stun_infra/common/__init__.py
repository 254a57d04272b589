"""What every side may import: the project's names, names that fit AWS's limits once Pulumi
auto-names them, text safe for one terminal line, and facts about certificates. Imports nothing of ours and never Pulumi, so the instance, the
client, the settings and the cloud read one copy."""
