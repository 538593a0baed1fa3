"""Tabular files read by pyarrow as a stream of record batches: CSV, Parquet and JSON Lines.

Each source infers column types from the start of the file, then reads the whole file with the
types it is asked for, a batch at a time, so an upload never has to fit in memory. Errors come
out as `DatasetError`s naming the row; finding that row re-reads the file, on the error path
only.
"""

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from app.datasets.schema import DatasetError

BLOCK_BYTES = 524288
PARQUET_BATCH_ROWS = 16_384
SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
UTF8_BOM = b"\xef\xbb\xbf"


class TableSource(Protocol):
    label: str  # "the CSV": how messages name the file
    types_guessed: bool  # column types are inferred from text (CSV), not stored with the file

    def schema(self) -> pa.Schema:
        """Column names and the types inferred from the start of the file."""
        ...

    def batches(self, types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        """Every row, with each column read as `types[name]`."""
        ...

    def where(self, row: int) -> str:
        """Where data row `row` (0-based) is, in the user's terms."""
        ...

    def guesses(self) -> list[str]:
        """What reading the file took on trust (delimiter, decimal mark), as sentences."""
        ...

    def text_columns(self, names: list[str]) -> pa.Table | None:
        """Every cell of these columns as text, where the format does not type its cells (CSV)."""
        ...


# --- CSV ---------------------------------------------------------------------------------------


def sniff_delimiter(path: Path) -> str:
    """The delimiter of the file's first lines, one of `DELIMITERS` (`,` when unsure)."""
    with path.open("rb") as handle:
        sample = handle.read(SNIFF_BYTES)
    sample = sample.removeprefix(UTF8_BOM)
    if len(sample) == SNIFF_BYTES and b"\n" in sample:
        sample = sample[: sample.rindex(b"\n") + 1]  # whole lines only
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(sample) == SNIFF_BYTES and exc.start >= len(sample) - 3:
            text = sample[: exc.start].decode("utf-8")  # a character cut by the sample's end
        else:
            raise DatasetError(utf8_problem(sample, exc)) from exc
    try:
        return csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = text.split("\n", 1)[0]
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


# A number written with a decimal comma ("3,14"), and one with a decimal point.
_COMMA_NUMBER = re.compile(r"^[-+]?\d+,\d+$")
_POINT_NUMBER = re.compile(r"^[-+]?\d*\.\d+$")


def sniff_decimal(path: Path, delimiter: str) -> str:
    """`,` when the file's first lines write numbers with a decimal comma (only possible when
    the delimiter is not a comma), else `.`."""
    if delimiter == ",":
        return "."
    with path.open("rb") as handle:
        text = handle.read(SNIFF_BYTES).removeprefix(UTF8_BOM).decode("utf-8", "replace")
    cells = [cell.strip().strip('"') for line in text.splitlines()[1:] for cell in line.split(delimiter)]
    commas = sum(1 for cell in cells if _COMMA_NUMBER.match(cell))
    points = sum(1 for cell in cells if _POINT_NUMBER.match(cell))
    return "," if commas and not points else "."


def utf8_problem(data: bytes, exc: UnicodeDecodeError, first_line: int = 1) -> str:
    line = first_line + data.count(b"\n", 0, exc.start)
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    return (
        f"line {line} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at character {column}); save the file as UTF-8"
    )


def first_non_utf8_line(path: Path) -> str:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return utf8_problem(line, exc, first_line=number)
    return "the file is not valid UTF-8; save it as UTF-8"


class CsvSource:
    label = "the CSV"
    types_guessed = True

    def __init__(self, path: Path, delimiter: str | None = None, decimal: str | None = None) -> None:
        """`delimiter` and `decimal` (the decimal mark) are guessed from the first lines unless given."""
        self.path = path
        self._guesses: list[str] = []
        self.delimiter = delimiter or sniff_delimiter(path)
        if delimiter is None and self.delimiter != ",":
            self._guesses.append(f"delimiter {self.delimiter!r} guessed from the first lines")
        self.decimal = decimal or sniff_decimal(path, self.delimiter)
        if decimal is None and self.decimal == ",":
            self._guesses.append(
                "decimal comma guessed: numbers in the first lines are written like 3,14 "
                "(send the form field decimal=. if that is wrong)"
            )
        self._bad_rows: list[Any] = []
        self._schema: pa.Schema | None = None

    def guesses(self) -> list[str]:
        return list(self._guesses)

    def text_columns(self, names: list[str]) -> pa.Table | None:
        try:
            return pa_csv.read_csv(
                self.path,
                read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES),
                parse_options=pa_csv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()), include_columns=names, strings_can_be_null=True
                ),
            )
        except pa.ArrowInvalid:
            return None  # a malformed file: the full read says where

    def schema(self) -> pa.Schema:
        if self._schema is None:
            reader = self._open({}, rows_before=0)
            self._schema = reader.schema
            reader.close()
        return self._schema

    def batches(self, types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        # Text read straight into dictionary arrays: categories are encoded while parsing.
        wanted = {
            name: pa.dictionary(pa.int32(), pa.string()) if kind == pa.string() else kind
            for name, kind in types.items()
        }
        reader = self._open(wanted, rows_before=0)
        rows = 0
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as exc:
                    raise self._explain(exc, rows) from exc
                yield batch
                rows += batch.num_rows
        finally:
            reader.close()

    def where(self, row: int) -> str:
        return f"data row {row + 1} (line {row + 2})"

    def _open(self, types: dict[str, pa.DataType], rows_before: int) -> pa_csv.CSVStreamingReader:
        def remember(row: Any) -> str:
            self._bad_rows.append(row)
            return "error"

        try:
            return pa_csv.open_csv(
                self.path,
                read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES, use_threads=True),
                parse_options=pa_csv.ParseOptions(
                    delimiter=self.delimiter, newlines_in_values=True, invalid_row_handler=remember
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types=types, strings_can_be_null=True, decimal_point=self.decimal
                ),
            )
        except pa.ArrowInvalid as exc:
            raise self._explain(exc, rows_before) from exc

    def _explain(self, exc: pa.ArrowInvalid, rows_before: int) -> DatasetError:
        message = str(exc)
        if self._bad_rows:
            row = self._bad_rows[0]
            line = self._line_number_of(row.text)
            at = f"line {line}" if line else "a row"
            return DatasetError(
                f"CSV {at} has {row.actual_columns} fields but the header has "
                f"{row.expected_columns}: {row.text[:200]!r}"
            )
        if "Empty CSV file" in message:
            return DatasetError("the file is empty")
        if "invalid UTF8" in message:
            return DatasetError(first_non_utf8_line(self.path))
        if "conversion error" in message and "In CSV column #" in message:
            index = int(message.split("In CSV column #", 1)[1].split(":", 1)[0])
            value = message.rsplit("invalid value ", 1)[-1].strip("'")
            return self._bad_value(self.schema().names[index], value, message)
        return DatasetError(f"the file is not readable as CSV: {message}")

    def _bad_value(self, column: str, value: str, message: str) -> DatasetError:
        expected = "whole numbers" if "int" in message.split("conversion error to ")[-1] else ""
        expected = expected or ("true/false values" if "to bool" in message else "numbers")
        text_types = {column: pa.string()}
        reader = pa_csv.open_csv(
            self.path,
            read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=text_types, include_columns=[column], decimal_point=self.decimal
            ),
        )
        values = reader.read_all().column(column)
        found = pc.index(values, value).as_py()
        at = self.where(found) if found is not None and found >= 0 else "a later row"
        return DatasetError(
            f"column {column!r} holds {expected} in its first rows but {value!r} at {at}; fix that value"
        )

    def _line_number_of(self, text: str) -> int | None:
        # Only on the error path: pyarrow's parallel reader does not know line numbers.
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if raw.rstrip(b"\r\n").decode("utf-8", "replace") == text:
                    return number
        return None


# --- Parquet -----------------------------------------------------------------------------------


class ParquetSource:
    """Read a row group at a time, a column at a time, each column cast as soon as it is read.

    pyarrow's batch iterator reads far ahead, holding several row groups at once; reading one
    row group's columns one by one (and casting numbers to float32 on the way) holds about
    half a row group instead. Memory use still follows the file's row-group size.
    """

    label = "the Parquet file"
    types_guessed = False

    def guesses(self) -> list[str]:
        return []  # Parquet stores its types

    def text_columns(self, names: list[str]) -> pa.Table | None:
        return None

    def __init__(self, path: Path, max_decoded_bytes: int) -> None:
        try:
            self._file = pq.ParquetFile(path, pre_buffer=False)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"the file is not a valid Parquet file: {exc}") from exc
        # Dictionary and run-length encodings let a tiny file hold millions of rows: bound what
        # it decodes to (8 bytes a cell, as read; text columns by their uncompressed size) from
        # the footer, before any row group is read.
        metadata = self._file.metadata
        decoded = 0
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for column in range(row_group.num_columns):
                chunk = row_group.column(column)
                decoded += max(8 * row_group.num_rows, chunk.total_uncompressed_size)
        if decoded > max_decoded_bytes:
            raise DatasetError(
                f"the Parquet file's {metadata.num_rows} rows of {metadata.num_columns} columns decode to about "
                f"{decoded} bytes, over the limit of {max_decoded_bytes} "
                "(TRAINYARD_MAX_UPLOAD_BYTES x TRAINYARD_MAX_UNPACK_FACTOR)"
            )

    def schema(self) -> pa.Schema:
        return self._file.schema_arrow

    def batches(self, types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        names = self._file.schema_arrow.names
        for group in range(self._file.metadata.num_row_groups):
            try:
                columns = [
                    pc.cast(
                        self._file.read_row_group(group, columns=[name]).column(0),
                        types[name],
                        safe=False,
                    )
                    for name in names
                ]
            except (pa.ArrowInvalid, OSError) as exc:
                raise DatasetError(f"row group {group} of the Parquet file cannot be read: {exc}") from exc
            yield from pa.table(columns, names=names).to_batches(max_chunksize=PARQUET_BATCH_ROWS)
            del columns
            # Decoding runs on pyarrow's threads, whose allocator caches would keep freed row
            # groups resident; hand that memory back before the next one.
            pa.default_memory_pool().release_unused()

    def where(self, row: int) -> str:
        return f"row {row + 1}"


# --- JSON Lines --------------------------------------------------------------------------------


class JsonLinesSource:
    label = "the JSON Lines file"
    types_guessed = False

    def guesses(self) -> list[str]:
        return []  # JSON writes numbers and strings differently

    def text_columns(self, names: list[str]) -> pa.Table | None:
        return None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._schema: pa.Schema | None = None

    def schema(self) -> pa.Schema:
        if self._schema is None:
            try:
                reader = pa_json.open_json(self.path, read_options=self._read_options())
            except pa.ArrowInvalid as exc:
                raise self._explain(exc, {}) from exc
            self._schema = reader.schema
        return self._schema

    def batches(self, types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        options = pa_json.ParseOptions(
            explicit_schema=pa.schema(list(types.items())), unexpected_field_behavior="error"
        )
        try:
            reader = pa_json.open_json(self.path, read_options=self._read_options(), parse_options=options)
            for batch in reader:
                for column in batch.columns:
                    column.validate(full=True)  # pyarrow.json does not check UTF-8 itself
                yield batch
        except pa.ArrowInvalid as exc:
            raise self._explain(exc, types) from exc

    def where(self, row: int) -> str:
        return f"line {row + 1}"

    def _read_options(self) -> pa_json.ReadOptions:
        return pa_json.ReadOptions(block_size=BLOCK_BYTES, use_threads=True)

    def _explain(self, exc: pa.ArrowInvalid, types: dict[str, pa.DataType]) -> DatasetError:
        message = str(exc)
        if "Empty JSON" in message:
            return DatasetError("the file is empty")
        if "UTF8" in message:
            return DatasetError(first_non_utf8_line(self.path))
        return DatasetError(self._first_bad_line(types) or f"the file is not JSON Lines: {message}")

    def _first_bad_line(self, types: dict[str, pa.DataType]) -> str | None:
        """Find the first line that is not an object with the expected fields and value types."""
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except UnicodeDecodeError as exc:
                    return utf8_problem(raw, exc, first_line=number)
                except json.JSONDecodeError as exc:
                    return f"line {number} is not valid JSON: {exc.msg} at character {exc.pos + 1}"
                if not isinstance(record, dict):
                    return f"line {number} is not a JSON object"
                for name, value in record.items():
                    if types and name not in types:
                        return f"line {number} has a field {name!r} that earlier lines do not have"
                    if name in types and not _fits(value, types[name]):
                        return f"line {number}: field {name!r} is {value!r}, not {types[name]}"
        return None


def _fits(value: Any, kind: pa.DataType) -> bool:
    if value is None:
        return True
    if pa.types.is_integer(kind):
        return isinstance(value, int)
    if pa.types.is_floating(kind):
        return isinstance(value, int | float)
    if pa.types.is_boolean(kind):
        return isinstance(value, bool)
    if pa.types.is_string(kind):
        return isinstance(value, str)
    return True
