from quickstudy import compilation_cache

# The persistent compilation cache, as the CLI uses it: tests re-run the same small programs
# (and so do the two xdist workers), so every compile is cached. QUICKSTUDY_COMPILATION_CACHE
# chooses the directory, or turns it off.
compilation_cache.enable()
