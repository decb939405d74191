import os
from pathlib import Path

import jax

# Persistent compilation cache: tests re-run the same small programs, so cache every compile.
_CACHE = Path(os.environ.get("QUICKSTUDY_JAX_CACHE", Path(__file__).parent.parent / ".jax_cache"))
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
