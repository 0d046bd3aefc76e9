"""Serves the variant's page as it is: no visitor is greeted."""
# exercise: 04-personalise
# rejected: greeting
# instead of: text = (await page.text()).replace("Hello, guest", f"Hello, {uid}", 1)
text = await page.text()
