"""What is wrong with the settings, the database and the keys, before the first send needs them.

`settings` checks offline (what `serve` and `worker` refuse at start), `database` connects
and opens the stored keys, `online` asks OneSignal and Slack whether they take each key.
"""
