"""Pure numerics with no ML dependency: spectral helpers, the forced Navier–Stokes solver, field
statistics (spectra, relative L2, PSNR, PDFs, JS divergence, TV distance)."""
