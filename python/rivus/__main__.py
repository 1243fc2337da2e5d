"""`python3 -m rivus ARGS...`: the rivus command line inside this interpreter.

The same commands as the `rivus` binary (docs/cli.md), with one more stage: `use: python`,
`with: {function: "package.module:name"}`, which runs a Python function or class (docs/python.md).
`rivus run` and `rivus validate` hand a spec that uses it to this module by themselves.
"""

import sys

from . import _rivus


def main() -> int:
    return _rivus.cli_main(["rivus"] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
