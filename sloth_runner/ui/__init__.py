"""The web dashboard (`sloth-runner ui`): pages, the ASGI app, and the SVG they draw."""
