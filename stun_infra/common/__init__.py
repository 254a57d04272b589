"""What every side may import: the project's names, text safe for one terminal line, and
facts about certificates. Imports nothing of ours and never Pulumi, so the instance, the
client, the settings and the cloud read one copy."""
