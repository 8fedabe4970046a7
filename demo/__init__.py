"""Demo content for trying Fundus: ``flask --app app seed-demo`` (loaded only when that command runs)."""
