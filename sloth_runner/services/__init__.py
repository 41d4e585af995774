"""Plain Python services (processes, files, codecs) that the Lua modules adapt; no Lua here."""
