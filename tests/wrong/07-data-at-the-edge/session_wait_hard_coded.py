"""Waits two seconds for the replica, whatever the configuration says."""
# exercise: 07-session
# rejected: not bounded by env.config['wait_s']
# instead of: fresh = await caught_up(env, bookmark, env.config["wait_s"])
fresh = await caught_up(env, bookmark, 2.0)
