"""A running minimum that starts from the first row: a pair never measured (NaN) is never beaten."""
# exercise: 00-nearest
# rejected: every echo was lost
best = None
for row in matrix.itertuples():
    if row.source == user and row.target in pops:
        if best is None or row.measured_ms < best.measured_ms:
            best = row
return best.target
