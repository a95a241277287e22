"""The `ruclip` command run in the test's own process."""


def run(capsys, *arguments) -> tuple:
    """(exit code, stdout, stderr) of `ruclip ARGUMENTS` (each made a str); what was printed before is dropped."""
    from ruclip.cli import main

    capsys.readouterr()
    code = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
