"""Words both features share: the target groups of materials and trainings."""

from flask_babel import lazy_gettext as _l
from wtforms.fields.choices import SelectChoice

from core.models import LabelledEnum, set_labels


class TargetGroup(LabelledEnum):
    """Who a material or training is for."""

    HOUSING = "housing"
    MUNICIPAL = "municipal"
    ASSOCIATIONS = "associations"
    COUNSELLING = "counselling"
    EVERYONE = "everyone"


TARGET_GROUP_LABELS = set_labels(TargetGroup, {
    TargetGroup.HOUSING: _l("Housing industry"),
    TargetGroup.MUNICIPAL: _l("Municipal administration"),
    TargetGroup.ASSOCIATIONS: _l("Associations"),
    TargetGroup.COUNSELLING: _l("Counselling centres"),
    TargetGroup.EVERYONE: _l("Open to all"),
})


def target_groups(stored: str) -> list[TargetGroup]:
    """The known groups of a comma-separated column value, in their order."""
    return [TargetGroup(v) for v in stored.split(",") if v in TargetGroup._value2member_map_]


def target_group_choices() -> list[SelectChoice]:
    """The groups as choices of a form field."""
    return [SelectChoice(t.value, TARGET_GROUP_LABELS[t]) for t in TargetGroup]
