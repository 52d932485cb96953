"""The suite's command-line programs, one module per command: each parses its flags, calls one
library function and prints. `main()` is the program (a UsageError for bad input); `run()` is the
console entry point (`coordconv-train-atari`, ...; pyproject's [project.scripts]) that turns a
UsageError into one line and exit status 2. scripts/<name>.py run the same `main` in a checkout."""
