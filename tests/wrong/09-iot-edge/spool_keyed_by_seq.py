"""Keys the spool by seq alone: sensors count from 0 each, so their readings collide."""
# exercise: 09-spool
# rejected: readings of different sensors with the same seq
# instead of: " sent INTEGER DEFAULT 0, PRIMARY KEY (sensor, seq))"
" sent INTEGER DEFAULT 0, PRIMARY KEY (seq))"
