"""``bench report``: result files rendered as pages people would rather read.

Reads result files only (never runs anything): :mod:`.resultsets` loads them,
:mod:`.plots` draws them, :mod:`.pages` and :mod:`.seedpage` write Markdown, :mod:`.html`
folds the pages into one self-contained HTML file, :mod:`.render` ties it together.
"""
