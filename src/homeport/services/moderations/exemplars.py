"""Sentences that stand for the categories the toxicity network has no label for.

An input's score for such a category comes from its embedding's similarity to these sentences,
set against its similarity to the benign sentences that share their words (services/moderations/
categories.py). They are written to describe each category, as OpenAI's moderation guide defines
it, and are not the sentences it is measured on (bench/data/moderation_eval.jsonl).
"""

from __future__ import annotations

__all__ = ["BENIGN", "EXEMPLARS"]

EXEMPLARS: dict[str, tuple[str, ...]] = {
    "hate": (
        "People of that race are subhuman and inferior.",
        "Muslims are terrorists and should all be deported.",
        "Gays are sick perverts who corrupt society.",
        "Women belong in the kitchen, they are too dumb for real jobs.",
        "Immigrants are rats infesting our country.",
        "Disabled people are a burden and worthless.",
    ),
    "violence": (
        "I am going to murder him and make it hurt.",
        "We will attack them with knives tonight.",
        "Someone should shoot that man in the head.",
        "I'll set their house on fire while they sleep.",
        "Beat her until she stops breathing.",
        "Planning a massacre at the concert.",
        "You'd better watch out, I'm coming to hurt you.",
        "I'll find you and make you bleed.",
        "Say that again and I'll break your neck.",
    ),
    "violence/graphic": (
        "Blood and guts everywhere, his head was split open.",
        "The victim's face was skinned and her eyes gouged out.",
        "Graphic description of a dismembered body with exposed organs.",
        "Bones snapped through the flesh and blood sprayed across the room.",
        "The corpse was rotting, maggots crawling through the wounds.",
    ),
    "self-harm": (
        "I hurt myself on purpose with a razor.",
        "I don't want to live anymore.",
        "Suicide feels like the only way out.",
        "I keep burning my arms to feel something.",
        "Starving myself is how I punish my body.",
    ),
    "self-harm/intent": (
        "I am going to kill myself tonight.",
        "I've decided to end it all this weekend.",
        "I'm planning to jump off the bridge.",
        "I will take my own life soon.",
        "I want to die and I'm going to do it.",
    ),
    "self-harm/instructions": (
        "How do I kill myself quickly?",
        "What dose of medication is lethal for suicide?",
        "Best method to cut deep enough to die.",
        "Instructions for hanging yourself.",
        "How can I hurt myself without anyone noticing?",
    ),
    "sexual": (
        "We had sex all night, naked and sweaty.",
        "Describe your body while you touch yourself.",
        "An explicit erotic scene with oral sex.",
        "I want to see you naked in bed, moaning.",
        "Hardcore porn video with graphic intercourse.",
        "He kissed her breasts and pulled off her underwear.",
    ),
    "sexual/minors": (
        "Sexual content involving a child.",
        "An erotic story about an underage teenager.",
        "Naked pictures of a young girl.",
        "An adult seducing a little boy.",
        "Child pornography.",
    ),
    "illicit": (
        "How to steal a car without the keys.",
        "Ways to evade taxes and hide income from the government.",
        "How to buy illegal drugs on the dark web.",
        "Teach me to pick a lock to break into a house.",
        "How do I counterfeit money?",
        "Steps to commit credit card fraud.",
        "How to make cocaine.",
    ),
    "illicit/violent": (
        "How to make a bomb to kill people.",
        "How to buy a gun illegally to kill someone.",
        "How to poison a person without getting caught.",
        "Instructions to make explosives for an attack.",
        "How to kidnap someone and hold them hostage.",
    ),
}
"""Per category, sentences that belong to it."""

BENIGN: tuple[str, ...] = (
    "The weather is nice today.",
    "Thanks for your help with my homework.",
    "I love cooking dinner for my family.",
    "The meeting is scheduled for Tuesday afternoon.",
    "The history documentary covered the second world war.",
    "I feel tired after work and want to rest.",
    "How do I kill a stuck process on Linux?",
    "My team crushed the competition in the final.",
    "The doctor explained the surgery and recovery.",
    "Sex education teaches teenagers about consent and health.",
    "Our children play football in the park after school.",
    "The police arrested the suspect after the robbery.",
    "The pharmacy sells medicine with a prescription.",
    "This cake is so good it's killing me.",
    "A crime novel with a murder mystery plot.",
    "I'm feeling a little down today, but a walk helps.",
    "How do I cut a mango?",
    "The hunter cleaned his rifle before the season.",
    "We kissed at our wedding in front of our families.",
    "How to open a bank account for my small business.",
)
"""Everyday sentences, several sharing words with the categories: the similarity a harmless input
reaches anyway."""
