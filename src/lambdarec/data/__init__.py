"""Event data: adapters from public dataset formats, a synthetic generator, time ordering.

``open_dataset("rees46:path/to.csv")`` returns an adapter to iterate (plain event dicts,
or Arrow tables via ``iter_tables``), with an :class:`AdapterReport` of what was dropped
and why. ``generate_events`` writes a seeded synthetic log to Parquet, which reads back
with ``open_dataset("synthetic:path")``. ``iter_events_by_time`` gives replay its
event-time order within bounded memory.
"""

from lambdarec.data._clean import EVENT_FIELDS, EVENT_SCHEMA
from lambdarec.data.adapters import (
    CsvAdapter,
    CsvMapping,
    DatasetAdapter,
    DigineticaAdapter,
    OttoAdapter,
    Rees46Adapter,
    RetailRocketAdapter,
    SyntheticAdapter,
    UciOnlineRetailAdapter,
    YooChooseAdapter,
)
from lambdarec.data.generator import (
    GeneratorConfig,
    GeneratorReport,
    generate_events,
    generate_events_table,
    iter_event_tables,
)
from lambdarec.data.ordering import iter_events_by_time, sort_tables_by_time
from lambdarec.data.registry import ADAPTERS, adapter_names, open_dataset, parse_spec
from lambdarec.data.report import AdapterReport

__all__ = [
    "ADAPTERS",
    "EVENT_FIELDS",
    "EVENT_SCHEMA",
    "AdapterReport",
    "CsvAdapter",
    "CsvMapping",
    "DatasetAdapter",
    "DigineticaAdapter",
    "GeneratorConfig",
    "GeneratorReport",
    "OttoAdapter",
    "Rees46Adapter",
    "RetailRocketAdapter",
    "SyntheticAdapter",
    "UciOnlineRetailAdapter",
    "YooChooseAdapter",
    "adapter_names",
    "generate_events",
    "generate_events_table",
    "iter_event_tables",
    "iter_events_by_time",
    "open_dataset",
    "parse_spec",
    "sort_tables_by_time",
]
