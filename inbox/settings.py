"""The settings section the inbox layer owns: where the database is."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator


class Section(BaseModel):
    """A settings section: unknown keys are an error that names them."""

    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Section):
    uri: str = ""
    name: str = "switchboard"
    data_dir: Path = Path("./data")

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if value and not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must be empty (embedded database) or a mongodb:// URI")
        return value
