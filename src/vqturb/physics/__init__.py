"""Pure numerics with no ML dependency: spectral helpers, the forced Navier–Stokes solver, field
statistics (spectra, enstrophy). Comparisons between fields are in :mod:`vqturb.metrics`."""
